//! request: the attributes of one ad request that targeting looks at, already normalised
//! (country upper case, domain lower case, ...). Per-placement attributes (placement id and
//! sizes) are separate because one request may carry several placements.

use adp_domain::targeting::DeviceType;
use chrono::{DateTime, Utc};
use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes {
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub metro: Option<String>,
    pub device_type: Option<DeviceType>,
    pub os: Option<String>,
    pub browser: Option<String>,
    pub domain: Option<String>,
    pub app_bundle: Option<String>,
    pub language: Option<String>,
    pub key_values: Vec<(String, String)>,
    pub segments: Vec<String>,
    pub deals: Vec<String>,
    pub ip: Option<IpAddr>,
    /// The User-Agent belongs to a known crawler.
    pub crawler: bool,
}

/// The slot being filled: its id and the sizes it accepts (`WIDTHxHEIGHT`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slot {
    pub placement_id: String,
    pub sizes: std::sync::Arc<[String]>,
}

/// Everything an expression is evaluated against.
#[derive(Clone, Copy, Debug)]
pub struct MatchInput<'a> {
    pub attrs: &'a Attributes,
    pub slot: &'a Slot,
    pub now: DateTime<Utc>,
}

pub fn device_type_str(d: DeviceType) -> &'static str {
    match d {
        DeviceType::Phone => "phone",
        DeviceType::Tablet => "tablet",
        DeviceType::Desktop => "desktop",
        DeviceType::ConnectedTv => "connected_tv",
        DeviceType::SetTopBox => "set_top_box",
        DeviceType::ConnectedDevice => "connected_device",
        DeviceType::Ooh => "ooh",
    }
}
