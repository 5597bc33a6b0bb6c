//! support: events for the codec tests — one of each kind with every field set or with the
//! optional ones absent, and a proptest strategy over all events.
#![allow(dead_code)]

use adp_domain::events::{Event, EventKind};
use adp_domain::targeting::DeviceType;
use proptest::prelude::*;
use proptest::sample::select;

pub const ALL_KINDS: [EventKind; 9] = [
    EventKind::Request,
    EventKind::Decision,
    EventKind::Impression,
    EventKind::Click,
    EventKind::Bid,
    EventKind::Win,
    EventKind::Loss,
    EventKind::Billing,
    EventKind::Conversion,
];

pub const ALL_DEVICES: [DeviceType; 7] = [
    DeviceType::Phone,
    DeviceType::Tablet,
    DeviceType::Desktop,
    DeviceType::ConnectedTv,
    DeviceType::SetTopBox,
    DeviceType::ConnectedDevice,
    DeviceType::Ooh,
];

/// Every field set, each to a value no other field has.
pub fn full_event(kind: EventKind) -> Event {
    Event {
        id: "0197a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".into(),
        kind,
        event_time_ms: 1_750_000_000_123,
        receive_time_ms: 1_750_000_000_456,
        request_id: "req-7f3e9a".into(),
        decision_id: "dec-0197a3c4-0001".into(),
        advertiser_id: "demo-acme".into(),
        campaign_id: "demo-acme-spring".into(),
        line_item_id: "demo-acme-ron".into(),
        creative_id: "demo-acme-banner-300x250".into(),
        publisher_id: "demo-dailynews".into(),
        site_id: "demo-dailynews-web".into(),
        placement_id: "demo-dailynews-top".into(),
        deal_id: Some("deal-pmp-42".into()),
        user_key: 0x9E37_79B9_7F4A_7C15,
        country: Some("DE".into()),
        device_type: Some(DeviceType::ConnectedTv),
        price_micros: 2_750_000,
        cost_micros: -2_750,
        currency: "EUR".into(),
        reason: Some("outbid".into()),
        stands_for_request: true,
    }
}

/// The optional fields absent, everything else at its zero value where it has one.
pub fn minimal_event(kind: EventKind) -> Event {
    Event {
        id: "x".into(),
        kind,
        event_time_ms: 0,
        receive_time_ms: 0,
        request_id: String::new(),
        decision_id: String::new(),
        advertiser_id: String::new(),
        campaign_id: String::new(),
        line_item_id: String::new(),
        creative_id: String::new(),
        publisher_id: String::new(),
        site_id: String::new(),
        placement_id: String::new(),
        deal_id: None,
        user_key: 0,
        country: None,
        device_type: None,
        price_micros: 0,
        cost_micros: 0,
        currency: String::new(),
        reason: None,
        stands_for_request: false,
    }
}

/// Ids as the platform makes them (lower-case hyphenated UUIDs) and anything else.
pub fn arb_id() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string().to_uppercase()),
        "[0-9a-fA-F-]{36}",
        any::<String>(),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9-]{1,36}", any::<String>()]
}

fn number() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), 0..10_000_000_000_000i64, any::<i64>()]
}

pub fn arb_event() -> impl Strategy<Value = Event> {
    let head = (arb_id(), select(ALL_KINDS.to_vec()), number(), number(), text(), text(), text(), text());
    let ids = (text(), text(), text(), text(), text(), proptest::option::of(text()));
    let rest = (
        any::<u64>(),
        proptest::option::of(text()),
        proptest::option::of(select(ALL_DEVICES.to_vec())),
        number(),
        number(),
        text(),
        proptest::option::of(text()),
        any::<bool>(),
    );
    (head, ids, rest).prop_map(
        |(
            (id, kind, event_time_ms, receive_time_ms, request_id, decision_id, advertiser_id, campaign_id),
            (line_item_id, creative_id, publisher_id, site_id, placement_id, deal_id),
            (user_key, country, device_type, price_micros, cost_micros, currency, reason, stands_for_request),
        )| Event {
            id,
            kind,
            event_time_ms,
            receive_time_ms,
            request_id,
            decision_id,
            advertiser_id,
            campaign_id,
            line_item_id,
            creative_id,
            publisher_id,
            site_id,
            placement_id,
            deal_id,
            user_key,
            country,
            device_type,
            price_micros,
            cost_micros,
            currency,
            reason,
            stands_for_request,
        },
    )
}
