//! events: event sinks. The embedded adapter is a durable local log (append-only segments with
//! checksums) feeding in-process delivery rollups; the Kafka forwarder follows that log and
//! produces every event to a Kafka-API broker. Nothing here runs on the request path except
//! `EventSink::submit`, which only enqueues.
#![forbid(unsafe_code)]

pub mod catalog_bus;
pub mod forwarder;
pub mod local_log;
pub mod rollup;

pub use catalog_bus::{catalog_topic, CatalogPublisher, CatalogSubscriber};
pub use forwarder::{
    Compression, ForwarderConfig, ForwarderError, ForwarderStats, ForwarderStatsHandle, KafkaForwarder,
};
pub use local_log::{
    EventObserver, FsyncPolicy, LocalLog, LogConfig, LogError, LogPosition, LogReader, LogWatermark, LoggedEvent,
};
pub use rollup::{DeliveryRollup, DeliveryTotals};

/// Fixtures shared by the crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use adp_domain::events::{Event, EventKind};

    /// A fully populated click event with the given ids.
    pub fn sample_event(id: &str, decision_id: &str) -> Event {
        Event {
            id: id.into(),
            kind: EventKind::Click,
            event_time_ms: 1_772_323_200_000,
            receive_time_ms: 1_772_323_200_010,
            request_id: "req".into(),
            decision_id: decision_id.into(),
            advertiser_id: "adv".into(),
            campaign_id: "cmp".into(),
            line_item_id: "li".into(),
            creative_id: "cr".into(),
            publisher_id: "pub".into(),
            site_id: "site".into(),
            placement_id: "pl".into(),
            deal_id: None,
            user_key: 42,
            country: Some("DE".into()),
            device_type: None,
            price_micros: 2_500_000,
            cost_micros: 2_500,
            currency: "EUR".into(),
            reason: None,
            stands_for_request: false,
        }
    }
}
