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
}
