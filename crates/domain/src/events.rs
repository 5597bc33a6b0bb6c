//! events: what the platform records about each decision, impression and click. Every event
//! has a unique, time-sortable id so that at-least-once delivery can be counted exactly once.

use crate::targeting::DeviceType;
use crate::Micros;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An ad request or bid request arrived (per placement or imp).
    #[default]
    Request,
    /// An ad was chosen for a placement (not billable).
    Decision,
    /// The ad was shown (billable for CPM line items).
    Impression,
    /// The ad was clicked (billable for CPC line items).
    Click,
    /// A bid was made in an OpenRTB auction (not billable).
    Bid,
    /// The exchange says the bid won (`nurl`); billable when billing is on win notices.
    Win,
    /// The exchange says the bid lost (`lurl`); `reason` carries the loss code.
    Loss,
    /// The exchange bills the won impression (`burl`): billable at the clearing price.
    Billing,
    /// The advertiser reports a conversion, attributed to an earlier click or impression.
    Conversion,
}

/// One event, schema v1. `Default` is every field empty (a request event at time 0), for
/// building events field by field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// UUIDv7 (time-sortable), hyphenated.
    pub id: String,
    pub kind: EventKind,
    /// When it happened (for an impression: when the pixel fired), Unix milliseconds.
    pub event_time_ms: i64,
    /// When this process received it, Unix milliseconds.
    pub receive_time_ms: i64,
    /// The decision request this event belongs to (client-chosen or generated).
    pub request_id: String,
    /// The server-made id of one ad decision (one placement of a request); the impression and
    /// click of that ad carry it too, so each is counted once.
    #[serde(default)]
    pub decision_id: String,
    pub advertiser_id: String,
    pub campaign_id: String,
    pub line_item_id: String,
    pub creative_id: String,
    pub publisher_id: String,
    pub site_id: String,
    pub placement_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_id: Option<String>,
    /// A keyed hash of the user id; never the id itself.
    pub user_key: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<DeviceType>,
    /// The clearing price: per thousand impressions for CPM, per click for CPC. Micros.
    pub price_micros: Micros,
    /// What this event spent from the line item's budget (0 for decisions). Micros.
    pub cost_micros: Micros,
    pub currency: String,
    /// A machine-readable reason code, where one applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A decision that also stands for its placement's request event, which was not written on
    /// its own (one record per filled placement instead of two). Readers that count requests
    /// count it through [`EventRef::implied_request`]. False on every other event, and on the
    /// decisions of writers that wrote the request event separately.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stands_for_request: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What is XORed into the last byte of a decision's 16-byte id to make the id of the request
/// event it stands for ([`EventRef::implied_request`]): the same millisecond and the same random
/// bits but one, so the derived id sorts with the decision and is stable across re-reads (a
/// store that drops duplicates by id drops it too), and meets another event's id only as often
/// as two random UUIDv7s meet.
pub const IMPLIED_REQUEST_ID_XOR: u8 = 0x01;

/// An event id as a record carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdRef<'a> {
    /// A lower-case hyphenated UUID, as its 16 bytes (big endian); [`Event::id`] is their text.
    Uuid([u8; 16]),
    /// Any other id, unchanged.
    Text(&'a str),
}

impl Default for IdRef<'_> {
    fn default() -> Self {
        IdRef::Text("")
    }
}

/// A decoded event whose strings borrow from the record (`adp_eventwire::decode_ref`, or made by the serving path): the fields of [`Event`]
/// without an allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub id: IdRef<'a>,
    pub kind: EventKind,
    pub event_time_ms: i64,
    pub receive_time_ms: i64,
    pub request_id: &'a str,
    pub decision_id: &'a str,
    pub advertiser_id: &'a str,
    pub campaign_id: &'a str,
    pub line_item_id: &'a str,
    pub creative_id: &'a str,
    pub publisher_id: &'a str,
    pub site_id: &'a str,
    pub placement_id: &'a str,
    pub deal_id: Option<&'a str>,
    pub user_key: u64,
    pub country: Option<&'a str>,
    pub device_type: Option<DeviceType>,
    pub price_micros: i64,
    pub cost_micros: i64,
    pub currency: &'a str,
    pub reason: Option<&'a str>,
    pub stands_for_request: bool,
}

impl<'a> EventRef<'a> {
    /// The owned event (what `adp_eventwire::decode` returns for the same record).
    pub fn to_event(&self) -> Event {
        Event {
            id: match self.id {
                IdRef::Uuid(bytes) => uuid_text(bytes),
                IdRef::Text(text) => text.to_owned(),
            },
            kind: self.kind,
            event_time_ms: self.event_time_ms,
            receive_time_ms: self.receive_time_ms,
            request_id: self.request_id.to_owned(),
            decision_id: self.decision_id.to_owned(),
            advertiser_id: self.advertiser_id.to_owned(),
            campaign_id: self.campaign_id.to_owned(),
            line_item_id: self.line_item_id.to_owned(),
            creative_id: self.creative_id.to_owned(),
            publisher_id: self.publisher_id.to_owned(),
            site_id: self.site_id.to_owned(),
            placement_id: self.placement_id.to_owned(),
            deal_id: self.deal_id.map(str::to_owned),
            user_key: self.user_key,
            country: self.country.map(str::to_owned),
            device_type: self.device_type,
            price_micros: self.price_micros,
            cost_micros: self.cost_micros,
            currency: self.currency.to_owned(),
            reason: self.reason.map(str::to_owned),
            stands_for_request: self.stands_for_request,
        }
    }

    /// A view of an owned event. Its id is [`IdRef::Text`], whatever its form: the view of a
    /// decoded record may instead hold [`IdRef::Uuid`] for the same id.
    pub fn of(e: &'a Event) -> Self {
        EventRef {
            id: IdRef::Text(&e.id),
            kind: e.kind,
            event_time_ms: e.event_time_ms,
            receive_time_ms: e.receive_time_ms,
            request_id: &e.request_id,
            decision_id: &e.decision_id,
            advertiser_id: &e.advertiser_id,
            campaign_id: &e.campaign_id,
            line_item_id: &e.line_item_id,
            creative_id: &e.creative_id,
            publisher_id: &e.publisher_id,
            site_id: &e.site_id,
            placement_id: &e.placement_id,
            deal_id: e.deal_id.as_deref(),
            user_key: e.user_key,
            country: e.country.as_deref(),
            device_type: e.device_type,
            price_micros: e.price_micros,
            cost_micros: e.cost_micros,
            currency: &e.currency,
            reason: e.reason.as_deref(),
            stands_for_request: e.stands_for_request,
        }
    }

    /// The request event this decision stands for ([`Event::stands_for_request`]), as the
    /// serving path would have written it on its own: the placement's ids, user, geo and device,
    /// no line item, no price, no reason (it was filled); its id is the decision's with
    /// [`IMPLIED_REQUEST_ID_XOR`] in the last byte (an id that is not a UUID stands for the
    /// UUIDv5 of its text first). `None` for every other event, and for a flag on anything but a
    /// decision or a bid.
    pub fn implied_request(&self) -> Option<EventRef<'a>> {
        if !self.stands_for_request || !matches!(self.kind, EventKind::Decision | EventKind::Bid) {
            return None;
        }
        let mut id = match self.id {
            IdRef::Uuid(bytes) => bytes,
            IdRef::Text(text) => match uuid::Uuid::try_parse(text) {
                Ok(u) => u.into_bytes(),
                // Not made by this platform: any stable 16 bytes of the text will do.
                Err(_) => uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, text.as_bytes()).into_bytes(),
            },
        };
        id[15] ^= IMPLIED_REQUEST_ID_XOR;
        Some(EventRef {
            id: IdRef::Uuid(id),
            kind: EventKind::Request,
            event_time_ms: self.event_time_ms,
            receive_time_ms: self.receive_time_ms,
            request_id: self.request_id,
            publisher_id: self.publisher_id,
            site_id: self.site_id,
            placement_id: self.placement_id,
            user_key: self.user_key,
            country: self.country,
            device_type: self.device_type,
            ..EventRef::default()
        })
    }
}

/// The lower-case hyphenated text of a UUID given as its 16 bytes.
pub fn uuid_text(bytes: [u8; 16]) -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    String::from(&*uuid::Uuid::from_bytes(bytes).hyphenated().encode_lower(&mut buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(id: &str) -> Event {
        Event {
            id: id.into(),
            kind: EventKind::Decision,
            event_time_ms: 1_750_000_000_123,
            receive_time_ms: 1_750_000_000_124,
            request_id: "req-1".into(),
            decision_id: "dec-1".into(),
            advertiser_id: "adv".into(),
            campaign_id: "camp".into(),
            line_item_id: "li".into(),
            creative_id: "cr".into(),
            publisher_id: "pub".into(),
            site_id: "site".into(),
            placement_id: "pl".into(),
            deal_id: Some("deal".into()),
            user_key: 77,
            country: Some("DE".into()),
            device_type: Some(DeviceType::Phone),
            price_micros: 2_000_000,
            cost_micros: 0,
            currency: "USD".into(),
            reason: None,
            stands_for_request: true,
        }
    }

    #[test]
    fn the_implied_request_is_the_placements_request_event() {
        let d = decision("0197a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d");
        let r = EventRef::of(&d).implied_request().expect("stands for its request");
        let expected = Event {
            id: "0197a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6c".into(),
            kind: EventKind::Request,
            event_time_ms: d.event_time_ms,
            receive_time_ms: d.receive_time_ms,
            request_id: "req-1".into(),
            publisher_id: "pub".into(),
            site_id: "site".into(),
            placement_id: "pl".into(),
            user_key: 77,
            country: Some("DE".into()),
            device_type: Some(DeviceType::Phone),
            ..Event::default()
        };
        assert_eq!(r.to_event(), expected);
        // The same id whichever form the decision's id has (text here, 16 bytes from a record).
        let uuid = uuid::Uuid::parse_str(&d.id).expect("uuid").into_bytes();
        let from_bytes = EventRef { id: IdRef::Uuid(uuid), ..EventRef::of(&d) };
        assert_eq!(from_bytes.implied_request().map(|r| r.id), Some(r.id));
        // Ids that are not UUIDs get a stable one of their own.
        let odd = decision("not-a-uuid");
        let a = EventRef::of(&odd).implied_request().map(|r| r.id);
        assert_eq!(a, EventRef::of(&odd).implied_request().map(|r| r.id));
        assert_ne!(a, EventRef::of(&decision("not-a-uuid-2")).implied_request().map(|r| r.id));
    }

    #[test]
    fn only_a_decision_that_says_so_implies_a_request() {
        let mut d = decision("0197a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d");
        d.stands_for_request = false;
        assert_eq!(EventRef::of(&d).implied_request(), None);
        // Only decisions and bids stand for a request.
        let bid = Event { kind: EventKind::Bid, stands_for_request: true, ..d.clone() };
        assert!(EventRef::of(&bid).implied_request().is_some());
        let impression = Event { kind: EventKind::Impression, stands_for_request: true, ..d.clone() };
        assert_eq!(EventRef::of(&impression).implied_request(), None);
        // The flag survives the owned/borrowed round trip and JSON; false is left out of JSON.
        d.stands_for_request = true;
        assert_eq!(EventRef::of(&d).to_event(), d);
        let json = serde_json::to_string(&d).expect("json");
        assert!(json.contains("\"stands_for_request\":true"), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).expect("back"), d);
        d.stands_for_request = false;
        let json = serde_json::to_string(&d).expect("json");
        assert!(!json.contains("stands_for_request"), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).expect("back"), d);
    }
}
