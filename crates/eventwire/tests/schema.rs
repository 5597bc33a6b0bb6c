//! Schema: the hand-derived messages and the writer agree with `proto/event_v1.proto` (compiled
//! here by protox, read through prost-reflect), and readers tolerate what a newer v1 writer adds.

mod support;

use adp_domain::events::Event;
use adp_eventwire::proto::{DeviceTypeV1, EventKindV1, EventV1};
use adp_eventwire::{decode, encode, DecodeError, MAGIC, SCHEMA_VERSION};
use proptest::prelude::*;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value};
use protox::file::{File, FileResolver};
use std::path::Path;
use support::{arb_event, full_event, minimal_event, ALL_KINDS};

const EVENT_MESSAGE: &str = "adp.events.v1.Event";

fn proto_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto")
}

fn schema_pool() -> DescriptorPool {
    protox::Compiler::new([proto_dir()])
        .expect("include path")
        .open_file("event_v1.proto")
        .expect("event_v1.proto compiles")
        .descriptor_pool()
}

fn event_descriptor(pool: &DescriptorPool) -> MessageDescriptor {
    pool.get_message_by_name(EVENT_MESSAGE).expect("the .proto defines adp.events.v1.Event")
}

/// A .proto held in memory, for a schema a newer writer might have.
struct InMemory {
    name: &'static str,
    source: String,
}

impl FileResolver for InMemory {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == self.name {
            File::from_source(name, &self.source)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

/// The v1 schema with fields added the way the evolution rules allow.
fn newer_writer_pool() -> DescriptorPool {
    let source = std::fs::read_to_string(proto_dir().join("event_v1.proto")).expect("read the .proto");
    let end = source.rfind('}').expect("the Event message closes");
    let added = "  string placement_size = 24;\n  repeated uint64 segment_ids = 25;\n  \
                 Attribution attribution = 26;\n  double bid_floor = 27;\n  fixed32 region_code = 28;\n}\n\
                 message Attribution {\n  string click_id = 1;\n  int64 lookback_ms = 2;\n}\n";
    let source = format!("{}{}", &source[..end], added);
    protox::Compiler::with_file_resolver(InMemory { name: "event_v1_next.proto", source })
        .open_file("event_v1_next.proto")
        .expect("the extended .proto compiles")
        .descriptor_pool()
}

/// The message part of a record.
fn body(record: &[u8]) -> &[u8] {
    assert_eq!(&record[..2], &[MAGIC, SCHEMA_VERSION]);
    let mut rest = &record[2..];
    let len = prost::decode_length_delimiter(&mut rest).expect("body length");
    assert_eq!(len, rest.len());
    rest
}

fn varint(value: u64, out: &mut Vec<u8>) {
    prost::encode_length_delimiter(value as usize, out).expect("a Vec has room");
}

/// Wire types, from the Protobuf encoding.
const VARINT: u64 = 0;
const I64: u64 = 1;
const LEN: u64 = 2;
const SGROUP: u64 = 3;
const EGROUP: u64 = 4;
const I32: u64 = 5;

fn key(field: u64, wire_type: u64, out: &mut Vec<u8>) {
    varint(field << 3 | wire_type, out);
}

/// A record around a message body.
fn record(body: &[u8]) -> Vec<u8> {
    let mut out = vec![MAGIC, SCHEMA_VERSION];
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

fn encoded(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    encode(event, &mut out);
    out
}

fn text(message: &DynamicMessage, name: &str) -> String {
    match message.get_field_by_name(name).as_deref() {
        Some(Value::String(s)) => s.clone(),
        other => panic!("{name}: not a string: {other:?}"),
    }
}

fn int(message: &DynamicMessage, name: &str) -> i64 {
    match message.get_field_by_name(name).as_deref() {
        Some(Value::I64(v)) => *v,
        other => panic!("{name}: not an int64: {other:?}"),
    }
}

fn enum_name(message: &DynamicMessage, field: &str) -> String {
    let descriptor = message.descriptor().get_field_by_name(field).expect("field exists");
    let Kind::Enum(enumeration) = descriptor.kind() else { panic!("{field}: not an enum") };
    let Some(Value::EnumNumber(n)) = message.get_field_by_name(field).as_deref().cloned() else {
        panic!("{field}: no enum number")
    };
    enumeration.get_value(n).expect("a value the .proto knows").name().to_string()
}

/// `ConnectedTv` -> `CONNECTED_TV`.
fn screaming(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[test]
fn what_the_writer_puts_in_each_field_is_what_the_proto_names_it() {
    let pool = schema_pool();
    let event = full_event(ALL_KINDS[8]);
    let message = DynamicMessage::decode(event_descriptor(&pool), body(&encoded(&event))).expect("decodes");
    assert_eq!(message.unknown_fields().count(), 0);
    let Some(Value::Bytes(id)) = message.get_field_by_name("id_uuid").as_deref().cloned() else {
        panic!("a UUID id travels as bytes")
    };
    assert_eq!(uuid::Uuid::from_slice(&id).expect("16 bytes").to_string(), event.id);
    assert!(!message.has_field_by_name("id_text"));
    assert_eq!(enum_name(&message, "kind"), "EVENT_KIND_CONVERSION");
    assert_eq!(int(&message, "event_time_ms"), event.event_time_ms);
    assert_eq!(int(&message, "receive_time_ms"), event.receive_time_ms);
    for (name, value) in [
        ("request_id", &event.request_id),
        ("decision_id", &event.decision_id),
        ("advertiser_id", &event.advertiser_id),
        ("campaign_id", &event.campaign_id),
        ("line_item_id", &event.line_item_id),
        ("creative_id", &event.creative_id),
        ("publisher_id", &event.publisher_id),
        ("site_id", &event.site_id),
        ("placement_id", &event.placement_id),
        ("currency", &event.currency),
    ] {
        assert_eq!(&text(&message, name), value, "{name}");
    }
    for (name, value) in [("deal_id", &event.deal_id), ("country", &event.country), ("reason", &event.reason)] {
        assert_eq!(Some(text(&message, name)), *value, "{name}");
    }
    assert_eq!(message.get_field_by_name("user_key").as_deref(), Some(&Value::U64(event.user_key)));
    assert_eq!(int(&message, "price_micros"), event.price_micros);
    assert_eq!(int(&message, "cost_micros"), event.cost_micros);
    assert_eq!(enum_name(&message, "device_type"), "DEVICE_TYPE_CONNECTED_TV");
    assert!(event.stands_for_request);
    assert_eq!(message.get_field_by_name("stands_for_request").as_deref(), Some(&Value::Bool(true)));

    let text_id = Event { id: "demo-acme-ron".into(), ..minimal_event(ALL_KINDS[0]) };
    let message = DynamicMessage::decode(event_descriptor(&pool), body(&encoded(&text_id))).expect("decodes");
    assert_eq!(text(&message, "id_text"), "demo-acme-ron");
    assert!(!message.has_field_by_name("id_uuid"));
    for name in ["deal_id", "country", "reason", "stands_for_request"] {
        assert!(!message.has_field_by_name(name), "{name} absent");
    }
}

#[test]
fn every_field_of_the_proto_is_a_field_of_the_struct() {
    let descriptor = event_descriptor(&schema_pool());
    for field in descriptor.fields() {
        // One field set to a value that is not its default, written from the .proto's description.
        let value = match field.kind() {
            Kind::String => Value::String("x".into()),
            Kind::Bytes => Value::Bytes(vec![7; 16].into()),
            Kind::Int64 => Value::I64(-3),
            Kind::Fixed64 => Value::U64(3),
            Kind::Bool => Value::Bool(true),
            Kind::Enum(_) => Value::EnumNumber(1),
            other => panic!("{}: a type the struct does not expect: {other:?}", field.name()),
        };
        let mut message = DynamicMessage::new(descriptor.clone());
        message.set_field(&field, value);
        let bytes = message.encode_to_vec();
        // If the struct lacked the field (or had it under another number or type), it would be
        // skipped or misread, and writing the struct again would not give the same bytes.
        let decoded = EventV1::decode(bytes.as_slice()).expect("the struct reads it");
        assert_eq!(decoded.encode_to_vec(), bytes, "field {} ({})", field.name(), field.number());
    }
}

#[test]
fn the_enums_have_the_values_of_the_proto() {
    let pool = schema_pool();
    let check = |name: &str, prefix: &str, rust: &dyn Fn(i32) -> Option<String>| {
        let enumeration = pool.get_enum_by_name(name).expect("enum in the .proto");
        for value in enumeration.values() {
            let rust_name = rust(value.number()).unwrap_or_else(|| panic!("{}: no Rust variant", value.name()));
            assert_eq!(format!("{prefix}{}", screaming(&rust_name)), value.name());
        }
        for n in -1..64 {
            assert_eq!(rust(n).is_some(), enumeration.get_value(n).is_some(), "{name} number {n}");
        }
    };
    check("adp.events.v1.EventKind", "EVENT_KIND_", &|n| EventKindV1::try_from(n).ok().map(|v| format!("{v:?}")));
    check("adp.events.v1.DeviceType", "DEVICE_TYPE_", &|n| DeviceTypeV1::try_from(n).ok().map(|v| format!("{v:?}")));
}

#[test]
fn a_newer_writers_added_fields_are_skipped() {
    let pool = newer_writer_pool();
    let descriptor = pool.get_message_by_name(EVENT_MESSAGE).expect("Event");
    let attribution = pool.get_message_by_name("adp.events.v1.Attribution").expect("Attribution");
    for event in [full_event(ALL_KINDS[3]), minimal_event(ALL_KINDS[2])] {
        // What a newer writer sends: the same event, plus its new fields.
        let mut message = DynamicMessage::decode(descriptor.clone(), body(&encoded(&event))).expect("decodes");
        message.set_field_by_name("placement_size", Value::String("300x250".into()));
        message.set_field_by_name("segment_ids", Value::List(vec![Value::U64(1), Value::U64(u64::MAX)]));
        let mut nested = DynamicMessage::new(attribution.clone());
        nested.set_field_by_name("click_id", Value::String("clk-1".into()));
        nested.set_field_by_name("lookback_ms", Value::I64(86_400_000));
        message.set_field_by_name("attribution", Value::Message(nested));
        message.set_field_by_name("bid_floor", Value::F64(0.25));
        message.set_field_by_name("region_code", Value::U32(276));
        let newer = record(&message.encode_to_vec());
        assert!(newer.len() > encoded(&event).len());
        assert_eq!(decode(&newer), Ok(event));
    }
}

#[test]
fn unknown_fields_of_every_wire_type_anywhere_in_the_message_are_skipped() {
    let event = full_event(ALL_KINDS[6]);
    let mut unknown = Vec::new();
    key(100, VARINT, &mut unknown);
    varint(u64::MAX, &mut unknown);
    key(101, I64, &mut unknown);
    unknown.extend_from_slice(&[1; 8]);
    key(102, LEN, &mut unknown);
    varint(3, &mut unknown);
    unknown.extend_from_slice(b"abc");
    key(103, I32, &mut unknown);
    unknown.extend_from_slice(&[2; 4]);
    key(104, SGROUP, &mut unknown);
    key(1, VARINT, &mut unknown);
    varint(5, &mut unknown);
    key(104, EGROUP, &mut unknown);
    let known = body(&encoded(&event)).to_vec();
    for message in [[known.as_slice(), &unknown].concat(), [unknown.as_slice(), &known].concat()] {
        assert_eq!(decode(&record(&message)), Ok(event.clone()));
    }
}

#[test]
fn enum_values_a_reader_does_not_know_are_refused_by_name() {
    let descriptor = event_descriptor(&schema_pool());
    let event = full_event(ALL_KINDS[0]);
    for (field, value) in [("kind", 42), ("device_type", 99), ("kind", -1)] {
        let mut message = DynamicMessage::decode(descriptor.clone(), body(&encoded(&event))).expect("decodes");
        message.set_field_by_name(field, Value::EnumNumber(value));
        assert_eq!(
            decode(&record(&message.encode_to_vec())),
            Err(DecodeError::UnknownEnumValue { field: if field == "kind" { "kind" } else { "device_type" }, value })
        );
    }
    let mut message = DynamicMessage::decode(descriptor.clone(), body(&encoded(&event))).expect("decodes");
    message.clear_field_by_name("kind");
    assert_eq!(decode(&record(&message.encode_to_vec())), Err(DecodeError::MissingField { field: "kind" }));
    let mut message = DynamicMessage::decode(descriptor, body(&encoded(&event))).expect("decodes");
    message.set_field_by_name("id_uuid", Value::Bytes(vec![1; 15].into()));
    assert_eq!(decode(&record(&message.encode_to_vec())), Err(DecodeError::InvalidUuid { len: 15 }));
}

/// What the derived message makes of a body: the reference the wire format's reader must match.
fn derived_decode(body: &[u8]) -> Result<Event, DecodeError> {
    EventV1::decode(body).map_err(|e| DecodeError::Malformed { reason: e.to_string() })?.into_event()
}

/// Bytes that are partly a message: pieces of real records, stray keys of every wire type for
/// known and unknown fields, random bytes.
fn arb_message_soup() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        arb_event().prop_map(|e| body(&encoded(&e)).to_vec()),
        (1u64..30, 0u64..8).prop_map(|(f, w)| {
            let mut out = Vec::new();
            key(f, w, &mut out);
            out
        }),
        any::<u64>().prop_map(|v| {
            let mut out = Vec::new();
            varint(v, &mut out);
            out
        }),
        proptest::collection::vec(any::<u8>(), 0..24),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// The wire format's reader and the derived message agree on every input: the same event,
    /// or both an error.
    #[test]
    fn the_reader_agrees_with_the_derived_message(
        soup in arb_message_soup(),
        event in arb_event(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
    ) {
        let mut flipped = body(&encoded(&event)).to_vec();
        if !flipped.is_empty() {
            let i = at.index(flipped.len());
            flipped[i] ^= xor;
        }
        for message in [soup, flipped, body(&encoded(&event)).to_vec()] {
            let ours = decode(&record(&message));
            let reference = derived_decode(&message);
            match (&ours, &reference) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                _ => prop_assert!(false, "reader {:?} but derived message {:?} for {:02x?}", ours, reference, message),
            }
        }
    }

    /// The hand-written writer puts down the bytes the derived message does, and the .proto's
    /// dynamic message reads and writes them back unchanged.
    #[test]
    fn the_writer_agrees_with_the_derived_message_and_the_proto(event in arb_event()) {
        let written = encoded(&event);
        let derived = EventV1::from_event(&event).encode_to_vec();
        prop_assert_eq!(body(&written), derived.as_slice());
        let descriptor = event_descriptor(&schema_pool());
        let dynamic = DynamicMessage::decode(descriptor, body(&written)).expect("the .proto reads it");
        prop_assert_eq!(dynamic.unknown_fields().count(), 0);
        prop_assert_eq!(dynamic.encode_to_vec(), derived);
    }
}
