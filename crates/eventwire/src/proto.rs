//! proto: event schema v1 in the Protobuf encoding. The messages of `proto/event_v1.proto`,
//! derived by hand with prost (tests hold them to the .proto), and the codec the wire format
//! uses: a writer straight from a domain `Event` and a reader straight into one, both without an
//! intermediate message (tests hold them to the derived messages' bytes and results). Pure
//! functions, no I/O.

use crate::id::{uuid_bytes, uuid_text};
use crate::{wire, DecodeError, EventRef, IdRef};
use adp_domain::events::{Event, EventKind};
use adp_domain::targeting::DeviceType;

/// `adp.events.v1.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventV1 {
    #[prost(oneof = "EventIdV1", tags = "1, 2")]
    pub id: Option<EventIdV1>,
    #[prost(enumeration = "EventKindV1", tag = "3")]
    pub kind: i32,
    #[prost(int64, tag = "4")]
    pub event_time_ms: i64,
    #[prost(int64, tag = "5")]
    pub receive_time_ms: i64,
    #[prost(string, tag = "6")]
    pub request_id: String,
    #[prost(string, tag = "7")]
    pub decision_id: String,
    #[prost(string, tag = "8")]
    pub advertiser_id: String,
    #[prost(string, tag = "9")]
    pub campaign_id: String,
    #[prost(string, tag = "10")]
    pub line_item_id: String,
    #[prost(string, tag = "11")]
    pub creative_id: String,
    #[prost(string, tag = "12")]
    pub publisher_id: String,
    #[prost(string, tag = "13")]
    pub site_id: String,
    #[prost(string, tag = "14")]
    pub placement_id: String,
    #[prost(fixed64, tag = "15")]
    pub user_key: u64,
    #[prost(int64, tag = "16")]
    pub price_micros: i64,
    #[prost(int64, tag = "17")]
    pub cost_micros: i64,
    #[prost(string, tag = "18")]
    pub currency: String,
    #[prost(string, optional, tag = "19")]
    pub deal_id: Option<String>,
    #[prost(string, optional, tag = "20")]
    pub country: Option<String>,
    #[prost(enumeration = "DeviceTypeV1", tag = "21")]
    pub device_type: i32,
    #[prost(string, optional, tag = "22")]
    pub reason: Option<String>,
    #[prost(bool, tag = "23")]
    pub stands_for_request: bool,
}

/// `adp.events.v1.Event.id`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum EventIdV1 {
    /// The 16 bytes of a lower-case hyphenated UUID, big endian.
    #[prost(bytes = "vec", tag = "1")]
    IdUuid(Vec<u8>),
    /// Any other id, unchanged.
    #[prost(string, tag = "2")]
    IdText(String),
}

/// `adp.events.v1.EventKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum EventKindV1 {
    Unspecified = 0,
    Request = 1,
    Decision = 2,
    Impression = 3,
    Click = 4,
    Bid = 5,
    Win = 6,
    Loss = 7,
    Billing = 8,
    Conversion = 9,
}

/// `adp.events.v1.DeviceType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum DeviceTypeV1 {
    Unspecified = 0,
    Phone = 1,
    Tablet = 2,
    Desktop = 3,
    ConnectedTv = 4,
    SetTopBox = 5,
    ConnectedDevice = 6,
    Ooh = 7,
}

impl From<EventKind> for EventKindV1 {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::Request => EventKindV1::Request,
            EventKind::Decision => EventKindV1::Decision,
            EventKind::Impression => EventKindV1::Impression,
            EventKind::Click => EventKindV1::Click,
            EventKind::Bid => EventKindV1::Bid,
            EventKind::Win => EventKindV1::Win,
            EventKind::Loss => EventKindV1::Loss,
            EventKind::Billing => EventKindV1::Billing,
            EventKind::Conversion => EventKindV1::Conversion,
        }
    }
}

impl EventKindV1 {
    fn to_domain(self) -> Option<EventKind> {
        Some(match self {
            EventKindV1::Unspecified => return None,
            EventKindV1::Request => EventKind::Request,
            EventKindV1::Decision => EventKind::Decision,
            EventKindV1::Impression => EventKind::Impression,
            EventKindV1::Click => EventKind::Click,
            EventKindV1::Bid => EventKind::Bid,
            EventKindV1::Win => EventKind::Win,
            EventKindV1::Loss => EventKind::Loss,
            EventKindV1::Billing => EventKind::Billing,
            EventKindV1::Conversion => EventKind::Conversion,
        })
    }
}

impl From<Option<DeviceType>> for DeviceTypeV1 {
    fn from(device: Option<DeviceType>) -> Self {
        match device {
            None => DeviceTypeV1::Unspecified,
            Some(DeviceType::Phone) => DeviceTypeV1::Phone,
            Some(DeviceType::Tablet) => DeviceTypeV1::Tablet,
            Some(DeviceType::Desktop) => DeviceTypeV1::Desktop,
            Some(DeviceType::ConnectedTv) => DeviceTypeV1::ConnectedTv,
            Some(DeviceType::SetTopBox) => DeviceTypeV1::SetTopBox,
            Some(DeviceType::ConnectedDevice) => DeviceTypeV1::ConnectedDevice,
            Some(DeviceType::Ooh) => DeviceTypeV1::Ooh,
        }
    }
}

impl From<DeviceTypeV1> for Option<DeviceType> {
    fn from(device: DeviceTypeV1) -> Self {
        match device {
            DeviceTypeV1::Unspecified => None,
            DeviceTypeV1::Phone => Some(DeviceType::Phone),
            DeviceTypeV1::Tablet => Some(DeviceType::Tablet),
            DeviceTypeV1::Desktop => Some(DeviceType::Desktop),
            DeviceTypeV1::ConnectedTv => Some(DeviceType::ConnectedTv),
            DeviceTypeV1::SetTopBox => Some(DeviceType::SetTopBox),
            DeviceTypeV1::ConnectedDevice => Some(DeviceType::ConnectedDevice),
            DeviceTypeV1::Ooh => Some(DeviceType::Ooh),
        }
    }
}

/// The exact length of [`encode_body`]'s output for `event`, whose id goes on the wire as `id`
/// (its 16-byte form when it has one: see `wire_id`).
pub(crate) fn body_len(event: &EventRef<'_>, id: IdRef<'_>) -> usize {
    fn text(field: u32, s: &str) -> usize {
        if s.is_empty() {
            0
        } else {
            wire::bytes_len(field, s.len())
        }
    }
    fn int(field: u32, v: i64) -> usize {
        if v == 0 {
            0
        } else {
            wire::int_len(field, v)
        }
    }
    let id = match id {
        IdRef::Uuid(bytes) => wire::bytes_len(1, bytes.len()),
        IdRef::Text(text) => wire::bytes_len(2, text.len()),
    };
    let optional = |field, s: Option<&str>| s.map_or(0, |s| wire::bytes_len(field, s.len()));
    id + int(3, EventKindV1::from(event.kind) as i64)
        + int(4, event.event_time_ms)
        + int(5, event.receive_time_ms)
        + text(6, event.request_id)
        + text(7, event.decision_id)
        + text(8, event.advertiser_id)
        + text(9, event.campaign_id)
        + text(10, event.line_item_id)
        + text(11, event.creative_id)
        + text(12, event.publisher_id)
        + text(13, event.site_id)
        + text(14, event.placement_id)
        + if event.user_key == 0 { 0 } else { wire::fixed64_len(15) }
        + int(16, event.price_micros)
        + int(17, event.cost_micros)
        + text(18, event.currency)
        + optional(19, event.deal_id)
        + optional(20, event.country)
        + int(21, DeviceTypeV1::from(event.device_type) as i64)
        + optional(22, event.reason)
        + int(23, i64::from(event.stands_for_request))
}

/// Appends `event` as an `adp.events.v1.Event` message: fields in number order, proto3 defaults
/// left out, as `EventV1::encode` would write them (a test holds the two to the same bytes).
/// `id` is how the id goes on the wire (see `wire_id`).
pub(crate) fn encode_body(event: &EventRef<'_>, id: IdRef<'_>, out: &mut Vec<u8>) {
    fn text(field: u32, s: &str, out: &mut Vec<u8>) {
        if !s.is_empty() {
            wire::put_bytes(field, s.as_bytes(), out);
        }
    }
    fn int(field: u32, v: i64, out: &mut Vec<u8>) {
        if v != 0 {
            wire::put_int(field, v, out);
        }
    }
    fn optional(field: u32, s: Option<&str>, out: &mut Vec<u8>) {
        if let Some(s) = s {
            wire::put_bytes(field, s.as_bytes(), out);
        }
    }
    match id {
        IdRef::Uuid(bytes) => wire::put_bytes(1, &bytes, out),
        IdRef::Text(text) => wire::put_bytes(2, text.as_bytes(), out),
    }
    int(3, EventKindV1::from(event.kind) as i64, out);
    int(4, event.event_time_ms, out);
    int(5, event.receive_time_ms, out);
    text(6, event.request_id, out);
    text(7, event.decision_id, out);
    text(8, event.advertiser_id, out);
    text(9, event.campaign_id, out);
    text(10, event.line_item_id, out);
    text(11, event.creative_id, out);
    text(12, event.publisher_id, out);
    text(13, event.site_id, out);
    text(14, event.placement_id, out);
    if event.user_key != 0 {
        wire::put_fixed64(15, event.user_key, out);
    }
    int(16, event.price_micros, out);
    int(17, event.cost_micros, out);
    text(18, event.currency, out);
    optional(19, event.deal_id, out);
    optional(20, event.country, out);
    int(21, DeviceTypeV1::from(event.device_type) as i64, out);
    optional(22, event.reason, out);
    int(23, i64::from(event.stands_for_request), out);
}

/// The event id as read: its 16-byte form, anything else sent in `id_uuid`, or text.
enum IdField<'a> {
    Uuid([u8; 16]),
    NotUuid { len: usize },
    Text(&'a str),
}

/// Reads one `adp.events.v1.Event` message into an event, straight from the bytes: what
/// `EventV1::decode` and [`EventV1::into_event`] do together (a test holds the two to the same
/// results), without the intermediate message. Fields it does not know are skipped; a known
/// field with another wire type is an error; of a field given twice the last one counts.
pub(crate) fn decode_body(buf: &[u8]) -> Result<Event, DecodeError> {
    decode_body_ref(buf).map(|e| e.to_event())
}

/// [`decode_body`] without the copies: the strings are borrowed from `buf` and a UUID id stays
/// 16 bytes. The same checks, in the same order, hence the same errors.
pub(crate) fn decode_body_ref(mut buf: &[u8]) -> Result<EventRef<'_>, DecodeError> {
    let buf = &mut buf;
    let (mut id, mut kind, mut device_type) = (None, 0i32, 0i32);
    // Every field at its proto3 default; id, kind and device type are checked and set at the end.
    let mut event = EventRef::default();
    while !buf.is_empty() {
        let (field, wire_type) = wire::read_key(buf)?;
        let expected = match field {
            1 | 2 | 6..=14 | 18..=20 | 22 => wire::LEN,
            3..=5 | 16 | 17 | 21 | 23 => wire::VARINT,
            15 => wire::I64,
            _ => {
                wire::skip_field(field, wire_type, buf)?;
                continue;
            }
        };
        if wire_type != expected {
            return Err(DecodeError::Malformed { reason: format!("field {field} has wire type {wire_type}") });
        }
        match field {
            1 => {
                let bytes = wire::read_len_delimited(buf)?;
                id = Some(match <[u8; 16]>::try_from(bytes) {
                    Ok(uuid) => IdField::Uuid(uuid),
                    Err(_) => IdField::NotUuid { len: bytes.len() },
                });
            }
            2 => id = Some(IdField::Text(wire::read_str(buf)?)),
            // int32 fields take the varint's low 32 bits.
            3 => kind = wire::read_varint(buf)? as i32,
            4 => event.event_time_ms = wire::read_varint(buf)? as i64,
            5 => event.receive_time_ms = wire::read_varint(buf)? as i64,
            6 => event.request_id = wire::read_str(buf)?,
            7 => event.decision_id = wire::read_str(buf)?,
            8 => event.advertiser_id = wire::read_str(buf)?,
            9 => event.campaign_id = wire::read_str(buf)?,
            10 => event.line_item_id = wire::read_str(buf)?,
            11 => event.creative_id = wire::read_str(buf)?,
            12 => event.publisher_id = wire::read_str(buf)?,
            13 => event.site_id = wire::read_str(buf)?,
            14 => event.placement_id = wire::read_str(buf)?,
            15 => event.user_key = u64::from_le_bytes(wire::read_fixed::<8>(buf)?),
            16 => event.price_micros = wire::read_varint(buf)? as i64,
            17 => event.cost_micros = wire::read_varint(buf)? as i64,
            18 => event.currency = wire::read_str(buf)?,
            19 => event.deal_id = Some(wire::read_str(buf)?),
            20 => event.country = Some(wire::read_str(buf)?),
            21 => device_type = wire::read_varint(buf)? as i32,
            22 => event.reason = Some(wire::read_str(buf)?),
            // A bool is any varint; not zero is true.
            _ => event.stands_for_request = wire::read_varint(buf)? != 0,
        }
    }
    event.id = match id {
        Some(IdField::Uuid(bytes)) => IdRef::Uuid(bytes),
        Some(IdField::NotUuid { len }) => return Err(DecodeError::InvalidUuid { len }),
        Some(IdField::Text(text)) => IdRef::Text(text),
        None => return Err(DecodeError::MissingField { field: "id" }),
    };
    event.kind = kind_from_wire(kind)?;
    event.device_type = device_from_wire(device_type)?;
    Ok(event)
}

fn kind_from_wire(kind: i32) -> Result<EventKind, DecodeError> {
    EventKindV1::try_from(kind)
        .map_err(|_| DecodeError::UnknownEnumValue { field: "kind", value: kind })?
        .to_domain()
        .ok_or(DecodeError::MissingField { field: "kind" })
}

fn device_from_wire(device: i32) -> Result<Option<DeviceType>, DecodeError> {
    DeviceTypeV1::try_from(device)
        .map(Into::into)
        .map_err(|_| DecodeError::UnknownEnumValue { field: "device_type", value: device })
}

impl EventV1 {
    /// The message for `event`, field for field (what the wire format's writer puts down without
    /// the copy).
    pub fn from_event(event: &Event) -> Self {
        let id = match uuid_bytes(&event.id) {
            Some(bytes) => EventIdV1::IdUuid(bytes.to_vec()),
            None => EventIdV1::IdText(event.id.clone()),
        };
        EventV1 {
            id: Some(id),
            kind: EventKindV1::from(event.kind) as i32,
            event_time_ms: event.event_time_ms,
            receive_time_ms: event.receive_time_ms,
            request_id: event.request_id.clone(),
            decision_id: event.decision_id.clone(),
            advertiser_id: event.advertiser_id.clone(),
            campaign_id: event.campaign_id.clone(),
            line_item_id: event.line_item_id.clone(),
            creative_id: event.creative_id.clone(),
            publisher_id: event.publisher_id.clone(),
            site_id: event.site_id.clone(),
            placement_id: event.placement_id.clone(),
            user_key: event.user_key,
            price_micros: event.price_micros,
            cost_micros: event.cost_micros,
            currency: event.currency.clone(),
            deal_id: event.deal_id.clone(),
            country: event.country.clone(),
            device_type: DeviceTypeV1::from(event.device_type) as i32,
            reason: event.reason.clone(),
            stands_for_request: event.stands_for_request,
        }
    }

    /// The domain event, if the message is a valid one: an id, a known kind, a known device type.
    pub fn into_event(self) -> Result<Event, DecodeError> {
        let id = match self.id {
            Some(EventIdV1::IdUuid(bytes)) => {
                let len = bytes.len();
                uuid_text(<[u8; 16]>::try_from(bytes).map_err(|_| DecodeError::InvalidUuid { len })?)
            }
            Some(EventIdV1::IdText(text)) => text,
            None => return Err(DecodeError::MissingField { field: "id" }),
        };
        let kind = kind_from_wire(self.kind)?;
        let device_type = device_from_wire(self.device_type)?;
        Ok(Event {
            id,
            kind,
            event_time_ms: self.event_time_ms,
            receive_time_ms: self.receive_time_ms,
            request_id: self.request_id,
            decision_id: self.decision_id,
            advertiser_id: self.advertiser_id,
            campaign_id: self.campaign_id,
            line_item_id: self.line_item_id,
            creative_id: self.creative_id,
            publisher_id: self.publisher_id,
            site_id: self.site_id,
            placement_id: self.placement_id,
            deal_id: self.deal_id,
            user_key: self.user_key,
            country: self.country,
            device_type,
            price_micros: self.price_micros,
            cost_micros: self.cost_micros,
            currency: self.currency,
            reason: self.reason,
            stands_for_request: self.stands_for_request,
        })
    }
}
