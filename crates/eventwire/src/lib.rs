//! eventwire: the compact binary wire format of event schema v1 — what the Kafka producer carries
//! and what the local log can store instead of JSON. Pure encoding and decoding: no I/O, no
//! clocks; malformed input is an error, never a panic.
//!
//! # Record
//!
//! ```text
//! [0xAE magic][0x01 schema version][body length, Protobuf varint][body: adp.events.v1.Event]
//! ```
//!
//! The body is the message in the Protobuf binary encoding. Every version keeps this envelope
//! (magic, version, body length), so a reader can step over a record of a version it does not
//! know, and a record cut short anywhere is an error rather than a shorter event.
//!
//! The schema's source of truth is `proto/event_v1.proto` (field numbers, types and the evolution
//! rules are written there). The magic byte can never start UTF-8 text, so a record is never
//! mistaken for a JSON one; [`schema_version`] reads the version without decoding, so a consumer
//! can route or park records of a version it does not know, and [`decode`] refuses them with
//! [`DecodeError::UnsupportedVersion`]. Fields a reader does not know are skipped: a record from
//! a newer v1 writer with added fields decodes with an older reader.
//!
//! A hyphenated lower-case UUID id (what the platform makes: UUIDv7) travels as its 16 bytes and
//! comes back as the same string; any other id travels as text, unchanged. Optional strings keep
//! `None` apart from `Some("")`.
//!
//! A batch ([`encode_batch`], [`decode_batch`], [`records`], [`record_slices`]) is records one
//! after another; the Kafka forwarder sends one batch per message.
//!
//! # Why Protobuf and not Cap'n Proto
//!
//! The issue names Cap'n Proto and allows Protobuf (prost) if it is as fast or faster for
//! encode + decode. Both are implemented (Cap'n Proto in [`capnp_v1`]) and compared in
//! `benches/codec.rs`; BENCH.md has the numbers. For a domain [`Event`] in and out, this crate's
//! Protobuf codec is as fast as Cap'n Proto or faster at encode + decode (typically 15–20% less
//! time; faster at each alone), and its records are 38% smaller than unpacked Cap'n Proto (14%
//! smaller than packed), so it is the default. The speed comes from writing and reading the
//! Protobuf encoding straight from and into the `Event`; going through prost's derived message
//! (copy the event into the message, encode; decode, move the message into an event) is slower
//! than Cap'n Proto with a reused scratch segment, and BENCH.md says so too. Cap'n Proto's
//! strength, reading fields in place without decoding, does not pay here:
//! every reader wants owned `Event`s.
//!
//! # Generated and hand-written code
//!
//! No code generation runs at build time and no `protoc` is needed. The Protobuf messages in
//! [`proto`] are derived by hand with prost; the wire format's writer and reader
//! (`proto::encode_body`, `proto::decode_body`, on the primitives in `wire`) are written by hand
//! from the encoding's specification. Tests hold all of it to the .proto, compiled with the
//! pure-Rust `protox` and read through `prost-reflect` (`tests/schema.rs`): every .proto field is
//! a struct field under the same number and type, every value the writer puts down is the field
//! the .proto names, the writer's bytes equal the derived message's, and the reader's results
//! equal the derived message's on real, mangled and random input.
//!
//! The Cap'n Proto code in `src/event_v1_capnp.rs` is generated and committed; `regen.sh`
//! regenerates it (it needs the `capnp` compiler, Debian package `capnproto`, and `capnpc-rust`
//! from the `capnpc` crate of the same minor version as the `capnp` runtime). The generated code
//! uses no `unsafe`, so it builds under the workspace's `forbid(unsafe_code)`; it does call
//! `unwrap` in its text setters (allowed for that module only).

pub mod capnp_v1;
#[allow(clippy::all, clippy::unwrap_used, unused_qualifications)]
#[rustfmt::skip]
pub mod event_v1_capnp;
mod id;
pub mod proto;
mod wire;

use adp_domain::events::Event;
/// The borrowed event and its id live in the domain (the sink port takes them); re-exported here,
/// where records are read into them.
pub use adp_domain::events::{EventRef, IdRef};

/// First byte of every record. `0xAE` is a UTF-8 continuation byte, so no text (JSON) starts
/// with it.
pub const MAGIC: u8 = 0xAE;
/// Event schema version this crate reads and writes: the record's second byte.
pub const SCHEMA_VERSION: u8 = 1;

/// Why bytes are not an event this reader accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated event record: {reason}")]
    Truncated { reason: &'static str },
    #[error("not an event record: first byte {found:#04x}, expected {expected:#04x}")]
    BadMagic { found: u8, expected: u8 },
    #[error("event schema version {found} is not supported; this reader knows version {SCHEMA_VERSION}")]
    UnsupportedVersion { found: u8 },
    #[error("malformed event record: {reason}")]
    Malformed { reason: String },
    #[error("event record lacks `{field}`")]
    MissingField { field: &'static str },
    #[error("event record has unknown value {value} in `{field}`")]
    UnknownEnumValue { field: &'static str, value: i32 },
    #[error("event id has {len} bytes where a UUID has 16")]
    InvalidUuid { len: usize },
}

/// The exact number of bytes [`encode`] appends for `event`.
pub fn encoded_len(event: &Event) -> usize {
    encoded_len_ref(&EventRef::of(event))
}

/// The exact number of bytes [`encode_ref`] appends for `event`.
pub fn encoded_len_ref(event: &EventRef<'_>) -> usize {
    let body = proto::body_len(event, wire_id(event.id));
    2 + wire::varint_len(body as u64) + body
}

/// Appends `event` to `out` as one record: envelope, then the message.
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    encode_ref(&EventRef::of(event), out);
}

/// [`encode`] from a borrowed event: the serving path writes its events this way, straight from
/// the catalog's and the request's strings. A text id that is a lower-case hyphenated UUID travels
/// as its 16 bytes, like [`encode`]'s, so `encode_ref(&EventRef::of(e))` writes `encode(e)`'s bytes.
pub fn encode_ref(event: &EventRef<'_>, out: &mut Vec<u8>) {
    let id = wire_id(event.id);
    let body = proto::body_len(event, id);
    out.reserve(2 + wire::varint_len(body as u64) + body);
    out.push(MAGIC);
    out.push(SCHEMA_VERSION);
    wire::put_varint(body as u64, out);
    proto::encode_body(event, id, out);
}

/// How an id goes on the wire: its 16-byte form when it has one, else its text.
fn wire_id(id: IdRef<'_>) -> IdRef<'_> {
    match id {
        IdRef::Text(text) => id::uuid_bytes(text).map_or(id, IdRef::Uuid),
        uuid => uuid,
    }
}

/// Reads one record, which must be the whole of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let record = frame(bytes)?;
    if !record.rest.is_empty() {
        return Err(DecodeError::Malformed { reason: format!("{} bytes after the record", record.rest.len()) });
    }
    record.event()
}

/// Reads one record, which must be the whole of `bytes`, without copying it: [`decode`] with
/// the strings borrowed from `bytes` and a UUID id left as its 16 bytes. It accepts and refuses
/// exactly what [`decode`] does, with the same errors, and `decode_ref(b)?.to_event()` equals
/// `decode(b)?`.
pub fn decode_ref(bytes: &[u8]) -> Result<EventRef<'_>, DecodeError> {
    let record = frame(bytes)?;
    if !record.rest.is_empty() {
        return Err(DecodeError::Malformed { reason: format!("{} bytes after the record", record.rest.len()) });
    }
    if record.version != SCHEMA_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: record.version });
    }
    proto::decode_body_ref(record.body)
}

/// The schema version of a record, read from its envelope without decoding the message.
pub fn schema_version(record: &[u8]) -> Result<u8, DecodeError> {
    match record {
        [] => Err(DecodeError::Truncated { reason: "empty" }),
        [m, ..] if *m != MAGIC => Err(DecodeError::BadMagic { found: *m, expected: MAGIC }),
        [_] => Err(DecodeError::Truncated { reason: "no version byte" }),
        [_, version, ..] => Ok(*version),
    }
}

/// One record cut out of a buffer by its envelope, of whatever version.
struct Framed<'a> {
    version: u8,
    body: &'a [u8],
    /// The bytes after the record.
    rest: &'a [u8],
}

impl Framed<'_> {
    fn event(&self) -> Result<Event, DecodeError> {
        if self.version != SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: self.version });
        }
        proto::decode_body(self.body)
    }
}

/// Reads the envelope at the start of `bytes`: magic, version, body length; the body must be
/// there in full.
fn frame(bytes: &[u8]) -> Result<Framed<'_>, DecodeError> {
    let version = schema_version(bytes)?;
    let mut cursor = &bytes[2..];
    let len = wire::read_varint(&mut cursor).map_err(|_| DecodeError::Truncated { reason: "no body length" })?;
    if len > cursor.len() as u64 {
        return Err(DecodeError::Truncated { reason: "record ends before its body does" });
    }
    // Fits in usize: it is at most the slice's length.
    let (body, rest) = cursor.split_at(len as usize);
    Ok(Framed { version, body, rest })
}

/// Appends the events as a batch: their records, one after another.
pub fn encode_batch<'a>(events: impl IntoIterator<Item = &'a Event>, out: &mut Vec<u8>) {
    for event in events {
        encode(event, out);
    }
}

/// Reads a whole batch; the first bad record fails it.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    records(bytes).collect()
}

/// The events of a batch, one by one. A record that does not decode (an unknown version, a bad
/// message) is an `Err` and the next record is read; a broken envelope is an `Err` that ends the
/// iteration, since the next record cannot be found.
pub fn records(batch: &[u8]) -> Records<'_> {
    Records { rest: batch }
}

/// The partition of an event with Kafka key `key` (its `decision_id` when not empty, else its
/// `id`) in a topic of `partitions` partitions: CRC-32 of the key modulo the partition count,
/// which is what librdkafka's default partitioner (`consistent_random`) does with a keyed
/// message. The forwarder packs several events into one message, so it picks each event's
/// partition itself, this way: an event lands where a keyed message of it would, copies of an
/// event (resent after a failure) land on one partition, where the ingest drops them, and a
/// topic written one keyed message per event keeps its layout.
pub fn partition_for(key: &str, partitions: usize) -> i32 {
    // Below 2^31 for any partition count that fits an i32, as Kafka's do.
    (crc32fast::hash(key.as_bytes()) as usize % partitions.max(1)) as i32
}

/// [`partition_for`] of an event read in place: its key is its `decision_id` when not empty,
/// else its id as text (a UUID id held as 16 bytes is formatted on the stack, not allocated).
pub fn partition_of(event: &EventRef<'_>, partitions: usize) -> i32 {
    if !event.decision_id.is_empty() {
        return partition_for(event.decision_id, partitions);
    }
    match event.id {
        IdRef::Text(text) => partition_for(text, partitions),
        IdRef::Uuid(bytes) => {
            let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
            partition_for(uuid::Uuid::from_bytes(bytes).hyphenated().encode_lower(&mut buf), partitions)
        }
    }
}

/// The records of a batch as they are, each one whole record for [`decode`] or [`decode_ref`]
/// (which decode it in place); the envelopes are checked, not the bodies. A broken envelope is
/// an `Err` that ends the iteration, since the next record cannot be found.
pub fn record_slices(batch: &[u8]) -> RecordSlices<'_> {
    RecordSlices { rest: batch }
}

/// Iterator over the records of a batch; see [`record_slices`].
#[derive(Debug, Clone)]
pub struct RecordSlices<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RecordSlices<'a> {
    type Item = Result<&'a [u8], DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match frame(self.rest) {
            Ok(record) => {
                let (whole, rest) = self.rest.split_at(self.rest.len() - record.rest.len());
                self.rest = rest;
                Some(Ok(whole))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Iterator over the events of a batch; see [`records`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    rest: &'a [u8],
}

impl Iterator for Records<'_> {
    type Item = Result<Event, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match frame(self.rest) {
            Ok(record) => {
                self.rest = record.rest;
                Some(record.event())
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adp_domain::events::EventKind;

    fn event() -> Event {
        Event {
            id: "01950000-0000-7000-8000-000000000001".into(),
            kind: EventKind::Impression,
            event_time_ms: 1_750_000_000_000,
            receive_time_ms: 1_750_000_000_010,
            request_id: "req-1".into(),
            decision_id: "dec-1".into(),
            advertiser_id: "demo-acme".into(),
            campaign_id: "demo-acme-spring".into(),
            line_item_id: "demo-acme-ron".into(),
            creative_id: "demo-acme-banner".into(),
            publisher_id: "demo-pub".into(),
            site_id: "demo-site".into(),
            placement_id: "demo-top".into(),
            deal_id: None,
            user_key: 0xDEAD_BEEF,
            country: Some("DE".into()),
            device_type: None,
            price_micros: 2_500_000,
            cost_micros: 2_500,
            currency: "EUR".into(),
            reason: None,
            stands_for_request: false,
        }
    }

    #[test]
    fn record_is_magic_version_length_message() {
        let mut out = vec![7];
        encode(&event(), &mut out);
        assert_eq!(&out[1..3], &[MAGIC, SCHEMA_VERSION]);
        let mut rest = &out[3..];
        let len = wire::read_varint(&mut rest).expect("a body length");
        assert_eq!(len, rest.len() as u64);
        assert_eq!(out.len() - 1, encoded_len(&event()));
        assert_eq!(schema_version(&out[1..]), Ok(SCHEMA_VERSION));
        assert_eq!(decode(&out[1..]), Ok(event()));
    }

    #[test]
    fn envelope_errors_say_what_is_wrong() {
        assert_eq!(decode(&[]), Err(DecodeError::Truncated { reason: "empty" }));
        assert_eq!(decode(&[MAGIC]), Err(DecodeError::Truncated { reason: "no version byte" }));
        assert_eq!(decode(&[MAGIC, SCHEMA_VERSION]), Err(DecodeError::Truncated { reason: "no body length" }));
        assert_eq!(
            decode(&[MAGIC, SCHEMA_VERSION, 3, 0x18]),
            Err(DecodeError::Truncated { reason: "record ends before its body does" })
        );
        assert_eq!(decode(b"{\"id\":1}"), Err(DecodeError::BadMagic { found: b'{', expected: MAGIC }));
        assert_eq!(decode(&[MAGIC, 2, 1, 0x08]), Err(DecodeError::UnsupportedVersion { found: 2 }));
        assert_eq!(schema_version(&[MAGIC, 2, 1, 0x08]), Ok(2));
        assert_eq!(
            decode(&[MAGIC, 2, 0]).map_err(|e| e.to_string()),
            Err("event schema version 2 is not supported; this reader knows version 1".to_string())
        );
        // An empty message has no id.
        assert_eq!(decode(&[MAGIC, SCHEMA_VERSION, 0]), Err(DecodeError::MissingField { field: "id" }));
        for bad in [&[][..], &[MAGIC], &[MAGIC, 2, 1, 0x08], &[MAGIC, SCHEMA_VERSION, 0], b"{\"id\":1}"] {
            assert_eq!(decode_ref(bad).map(|e| e.to_event()), decode(bad));
        }
        let mut out = Vec::new();
        encode(&event(), &mut out);
        out.push(0);
        assert_eq!(decode(&out), Err(DecodeError::Malformed { reason: "1 bytes after the record".into() }));
        assert_eq!(decode_ref(&out), Err(DecodeError::Malformed { reason: "1 bytes after the record".into() }));
    }

    #[test]
    fn the_borrowing_reader_reads_what_the_owning_one_does() {
        let mut out = Vec::new();
        encode(&event(), &mut out);
        let view = decode_ref(&out).expect("decodes");
        assert_eq!(view.id, IdRef::Uuid([1, 0x95, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 1]));
        assert_eq!(view.to_event(), event());
        assert_eq!(EventRef::of(&event()).to_event(), event());
        let mut text_id = event();
        text_id.id = "not-a-uuid".into();
        out.clear();
        encode(&text_id, &mut out);
        assert_eq!(decode_ref(&out).map(|e| e.id), Ok(IdRef::Text("not-a-uuid")));
    }

    #[test]
    fn a_batch_skips_records_of_unknown_versions_and_stops_at_a_broken_envelope() {
        let mut batch = Vec::new();
        encode_batch([&event(), &event()], &mut batch);
        assert_eq!(decode_batch(&batch), Ok(vec![event(), event()]));

        let mut mixed = Vec::new();
        encode(&event(), &mut mixed);
        mixed.extend_from_slice(&[MAGIC, 9, 2, 0xAA, 0xBB]);
        encode(&event(), &mut mixed);
        let got: Vec<_> = records(&mixed).collect();
        assert_eq!(got, vec![Ok(event()), Err(DecodeError::UnsupportedVersion { found: 9 }), Ok(event())]);

        let cut = &batch[..batch.len() - 1];
        let got: Vec<_> = records(cut).collect();
        assert_eq!(got, vec![Ok(event()), Err(DecodeError::Truncated { reason: "record ends before its body does" })]);
        assert_eq!(records(&[0xFF; 11]).count(), 1);
        assert_eq!(decode_batch(&[]), Ok(vec![]));
    }

    #[test]
    fn partition_of_a_record_is_partition_for_of_its_key() {
        let uuid = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        for (id, decision) in [(uuid, ""), (uuid, "dec-9"), ("not-a-uuid", ""), ("", "")] {
            let e = Event { id: id.into(), decision_id: decision.into(), ..event() };
            let key = if decision.is_empty() { id } else { decision };
            let mut record = Vec::new();
            encode(&e, &mut record);
            let view = decode_ref(&record).expect("decodes");
            for partitions in [1, 7, 12] {
                assert_eq!(partition_of(&view, partitions), partition_for(key, partitions), "{id} {decision}");
                assert_eq!(partition_of(&EventRef::of(&e), partitions), partition_for(key, partitions));
            }
        }
    }

    #[test]
    fn record_slices_cut_a_batch_where_records_reads_it() {
        let mut mixed = Vec::new();
        encode(&event(), &mut mixed);
        let first = mixed.len();
        mixed.extend_from_slice(&[MAGIC, 9, 2, 0xAA, 0xBB]);
        encode(&event(), &mut mixed);
        let slices: Vec<_> = record_slices(&mixed).collect();
        assert_eq!(slices, vec![Ok(&mixed[..first]), Ok(&mixed[first..first + 5]), Ok(&mixed[first + 5..])]);
        let decoded: Vec<_> = record_slices(&mixed).map(|r| r.and_then(decode)).collect();
        assert_eq!(decoded, records(&mixed).collect::<Vec<_>>());
        let cut = &mixed[..mixed.len() - 1];
        let got: Vec<_> = record_slices(cut).map(|r| r.map(<[u8]>::len)).collect();
        assert_eq!(
            got,
            vec![Ok(first), Ok(5), Err(DecodeError::Truncated { reason: "record ends before its body does" })]
        );
        assert_eq!(record_slices(&[]).count(), 0);
    }
}
