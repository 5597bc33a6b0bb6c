//! capnp_v1: event schema v1 in Cap'n Proto (`capnp/event_v1.capnp`), unpacked or packed. This
//! is the comparison codec behind BENCH.md, not the wire format: its records start with
//! [`CAPNP_MAGIC`], so the default reader refuses them and this one refuses default records.
//! Pure functions, no I/O.

use crate::event_v1_capnp::{self as schema, event};
use crate::id::{uuid_bytes, uuid_text};
use crate::{DecodeError, SCHEMA_VERSION};
use adp_domain::events::{Event, EventKind};
use adp_domain::targeting::DeviceType;
use capnp::message::{Allocator, Builder, HeapAllocator, ReaderOptions, ScratchSpaceHeapAllocator};

/// First byte of a Cap'n Proto event record (the default format's is [`crate::MAGIC`]).
pub const CAPNP_MAGIC: u8 = 0xAC;

/// How the message words are laid out after the envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// The standard stream framing: segment table, then the segments' words as they are.
    Unpacked,
    /// The same, with Cap'n Proto's packing (runs of zero bytes squeezed out).
    Packed,
}

/// Words for the root pointer, the struct's data section (8 words) and its 14 pointers.
const FIXED_WORDS: usize = 1 + 8 + 14;

/// Words a text takes: its bytes and the NUL, padded to a word.
fn text_words(s: &str) -> usize {
    (s.len() + 1).div_ceil(8)
}

/// Appends one record: `[CAPNP_MAGIC][SCHEMA_VERSION]`, then the message in the standard stream
/// framing (its segment table gives the length). The message is built in a fresh segment sized to
/// fit it.
pub fn encode(event: &Event, packing: Packing, out: &mut Vec<u8>) -> capnp::Result<()> {
    let texts = [
        &event.request_id,
        &event.decision_id,
        &event.advertiser_id,
        &event.campaign_id,
        &event.line_item_id,
        &event.creative_id,
        &event.publisher_id,
        &event.site_id,
        &event.placement_id,
        &event.currency,
    ];
    let optional = [&event.deal_id, &event.country, &event.reason];
    let words = FIXED_WORDS
        + uuid_bytes(&event.id).map_or_else(|| text_words(&event.id), |_| 0)
        + texts.iter().map(|s| text_words(s)).sum::<usize>()
        + optional.iter().map(|s| s.as_deref().map_or(0, text_words)).sum::<usize>();
    // One segment that fits the whole message: one allocation, no second segment.
    let mut message = Builder::new(HeapAllocator::new().first_segment_words(u32::try_from(words).unwrap_or(u32::MAX)));
    write(event, packing, &mut message, out)
}

/// As [`encode`], building the message in `scratch`, which a writer keeps from one event to the
/// next (Cap'n Proto's way to save the allocation; the used part is zeroed after each message).
pub fn encode_with_scratch(
    event: &Event,
    packing: Packing,
    scratch: &mut ScratchSpaceHeapAllocator<'_>,
    out: &mut Vec<u8>,
) -> capnp::Result<()> {
    write(event, packing, &mut Builder::new(scratch), out)
}

fn write<A: Allocator>(
    event: &Event,
    packing: Packing,
    message: &mut Builder<A>,
    out: &mut Vec<u8>,
) -> capnp::Result<()> {
    let mut root = message.init_root::<event::Builder>();
    match uuid_bytes(&event.id) {
        Some(bytes) => {
            let value = u128::from_be_bytes(bytes);
            let mut uuid = root.reborrow().init_id().init_uuid();
            uuid.set_hi((value >> 64) as u64);
            uuid.set_lo(value as u64);
        }
        None => root.reborrow().init_id().set_text(event.id.as_str()),
    }
    root.set_kind(kind_to_schema(event.kind));
    root.set_event_time_ms(event.event_time_ms);
    root.set_receive_time_ms(event.receive_time_ms);
    if !event.request_id.is_empty() {
        root.set_request_id(event.request_id.as_str());
    }
    if !event.decision_id.is_empty() {
        root.set_decision_id(event.decision_id.as_str());
    }
    if !event.advertiser_id.is_empty() {
        root.set_advertiser_id(event.advertiser_id.as_str());
    }
    if !event.campaign_id.is_empty() {
        root.set_campaign_id(event.campaign_id.as_str());
    }
    if !event.line_item_id.is_empty() {
        root.set_line_item_id(event.line_item_id.as_str());
    }
    if !event.creative_id.is_empty() {
        root.set_creative_id(event.creative_id.as_str());
    }
    if !event.publisher_id.is_empty() {
        root.set_publisher_id(event.publisher_id.as_str());
    }
    if !event.site_id.is_empty() {
        root.set_site_id(event.site_id.as_str());
    }
    if !event.placement_id.is_empty() {
        root.set_placement_id(event.placement_id.as_str());
    }
    root.set_user_key(event.user_key);
    root.set_price_micros(event.price_micros);
    root.set_cost_micros(event.cost_micros);
    if !event.currency.is_empty() {
        root.set_currency(event.currency.as_str());
    }
    if let Some(s) = &event.deal_id {
        root.set_deal_id(s.as_str());
    }
    if let Some(s) = &event.country {
        root.set_country(s.as_str());
    }
    root.set_device_type(device_to_schema(event.device_type));
    if let Some(s) = &event.reason {
        root.set_reason(s.as_str());
    }
    root.set_stands_for_request(event.stands_for_request);
    out.push(CAPNP_MAGIC);
    out.push(SCHEMA_VERSION);
    match packing {
        Packing::Unpacked => capnp::serialize::write_message(out, message),
        Packing::Packed => capnp::serialize_packed::write_message(out, message),
    }
}

/// Reads one record written by [`encode`] with the same packing; trailing bytes are an error.
pub fn decode(bytes: &[u8], packing: Packing) -> Result<Event, DecodeError> {
    let mut body = match bytes {
        [] => return Err(DecodeError::Truncated { reason: "empty" }),
        [m, ..] if *m != CAPNP_MAGIC => return Err(DecodeError::BadMagic { found: *m, expected: CAPNP_MAGIC }),
        [_] => return Err(DecodeError::Truncated { reason: "no version byte" }),
        [_, v, ..] if *v != SCHEMA_VERSION => return Err(DecodeError::UnsupportedVersion { found: *v }),
        [_, _, body @ ..] => body,
    };
    let options = ReaderOptions::new();
    let event = match packing {
        Packing::Unpacked => {
            let message = capnp::serialize::read_message_from_flat_slice_no_alloc(&mut body, options)?;
            read_event(message.get_root::<event::Reader>()?)?
        }
        Packing::Packed => {
            let message = capnp::serialize_packed::read_message(&mut body, options)?;
            read_event(message.get_root::<event::Reader>()?)?
        }
    };
    if !body.is_empty() {
        return Err(DecodeError::Malformed { reason: format!("{} bytes after the message", body.len()) });
    }
    Ok(event)
}

impl From<capnp::Error> for DecodeError {
    fn from(e: capnp::Error) -> Self {
        DecodeError::Malformed { reason: e.to_string() }
    }
}

impl From<std::str::Utf8Error> for DecodeError {
    fn from(e: std::str::Utf8Error) -> Self {
        DecodeError::Malformed { reason: format!("text is not UTF-8: {e}") }
    }
}

fn text(t: capnp::Result<capnp::text::Reader<'_>>) -> Result<String, DecodeError> {
    Ok(t?.to_string()?)
}

fn read_event(root: event::Reader<'_>) -> Result<Event, DecodeError> {
    let id = match root.get_id().which() {
        Ok(event::id::Uuid(uuid)) => {
            uuid_text((u128::from(uuid.get_hi()) << 64 | u128::from(uuid.get_lo())).to_be_bytes())
        }
        Ok(event::id::Text(t)) => text(t)?,
        Err(capnp::NotInSchema(value)) => {
            return Err(DecodeError::UnknownEnumValue { field: "id", value: i32::from(value) })
        }
    };
    let kind = root.get_kind().map_err(|capnp::NotInSchema(value)| DecodeError::UnknownEnumValue {
        field: "kind",
        value: i32::from(value),
    })?;
    let kind = kind_from_schema(kind).ok_or(DecodeError::MissingField { field: "kind" })?;
    let device_type = root.get_device_type().map_err(|capnp::NotInSchema(value)| DecodeError::UnknownEnumValue {
        field: "device_type",
        value: i32::from(value),
    })?;
    let optional = |has: bool, t| if has { text(t).map(Some) } else { Ok(None) };
    Ok(Event {
        id,
        kind,
        event_time_ms: root.get_event_time_ms(),
        receive_time_ms: root.get_receive_time_ms(),
        request_id: text(root.get_request_id())?,
        decision_id: text(root.get_decision_id())?,
        advertiser_id: text(root.get_advertiser_id())?,
        campaign_id: text(root.get_campaign_id())?,
        line_item_id: text(root.get_line_item_id())?,
        creative_id: text(root.get_creative_id())?,
        publisher_id: text(root.get_publisher_id())?,
        site_id: text(root.get_site_id())?,
        placement_id: text(root.get_placement_id())?,
        deal_id: optional(root.has_deal_id(), root.get_deal_id())?,
        user_key: root.get_user_key(),
        country: optional(root.has_country(), root.get_country())?,
        device_type: device_from_schema(device_type),
        price_micros: root.get_price_micros(),
        cost_micros: root.get_cost_micros(),
        currency: text(root.get_currency())?,
        reason: optional(root.has_reason(), root.get_reason())?,
        stands_for_request: root.get_stands_for_request(),
    })
}

fn kind_to_schema(kind: EventKind) -> schema::EventKind {
    match kind {
        EventKind::Request => schema::EventKind::Request,
        EventKind::Decision => schema::EventKind::Decision,
        EventKind::Impression => schema::EventKind::Impression,
        EventKind::Click => schema::EventKind::Click,
        EventKind::Bid => schema::EventKind::Bid,
        EventKind::Win => schema::EventKind::Win,
        EventKind::Loss => schema::EventKind::Loss,
        EventKind::Billing => schema::EventKind::Billing,
        EventKind::Conversion => schema::EventKind::Conversion,
    }
}

fn kind_from_schema(kind: schema::EventKind) -> Option<EventKind> {
    Some(match kind {
        schema::EventKind::Unspecified => return None,
        schema::EventKind::Request => EventKind::Request,
        schema::EventKind::Decision => EventKind::Decision,
        schema::EventKind::Impression => EventKind::Impression,
        schema::EventKind::Click => EventKind::Click,
        schema::EventKind::Bid => EventKind::Bid,
        schema::EventKind::Win => EventKind::Win,
        schema::EventKind::Loss => EventKind::Loss,
        schema::EventKind::Billing => EventKind::Billing,
        schema::EventKind::Conversion => EventKind::Conversion,
    })
}

fn device_to_schema(device: Option<DeviceType>) -> schema::DeviceType {
    match device {
        None => schema::DeviceType::Unspecified,
        Some(DeviceType::Phone) => schema::DeviceType::Phone,
        Some(DeviceType::Tablet) => schema::DeviceType::Tablet,
        Some(DeviceType::Desktop) => schema::DeviceType::Desktop,
        Some(DeviceType::ConnectedTv) => schema::DeviceType::ConnectedTv,
        Some(DeviceType::SetTopBox) => schema::DeviceType::SetTopBox,
        Some(DeviceType::ConnectedDevice) => schema::DeviceType::ConnectedDevice,
        Some(DeviceType::Ooh) => schema::DeviceType::Ooh,
    }
}

fn device_from_schema(device: schema::DeviceType) -> Option<DeviceType> {
    match device {
        schema::DeviceType::Unspecified => None,
        schema::DeviceType::Phone => Some(DeviceType::Phone),
        schema::DeviceType::Tablet => Some(DeviceType::Tablet),
        schema::DeviceType::Desktop => Some(DeviceType::Desktop),
        schema::DeviceType::ConnectedTv => Some(DeviceType::ConnectedTv),
        schema::DeviceType::SetTopBox => Some(DeviceType::SetTopBox),
        schema::DeviceType::ConnectedDevice => Some(DeviceType::ConnectedDevice),
        schema::DeviceType::Ooh => Some(DeviceType::Ooh),
    }
}
