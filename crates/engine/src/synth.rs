//! synth: a synthetic catalog and request stream with realistic targeting, for benchmarks and
//! load tests — geo, device, segment, key-value, daypart and IP predicates in the proportions
//! an ad server sees. Deterministic for a seed.

use crate::request::{Attributes, Slot};
use adp_domain::{new_meta, Kind, Record, Spec};
use chrono::{TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

pub const COUNTRIES: &[&str] = &[
    "US", "DE", "GB", "FR", "IT", "ES", "NL", "PL", "SE", "AT", "CH", "BE", "DK", "NO", "FI", "IE", "PT", "CZ", "CA",
    "AU", "BR", "MX", "JP", "IN", "KR", "SG", "ZA", "TR", "AR", "NZ",
];
pub const DEVICES: &[&str] = &["phone", "tablet", "desktop", "connected_tv"];
pub const SECTIONS: &[&str] =
    &["news", "sports", "finance", "tech", "travel", "food", "auto", "health", "music", "games"];
pub const SEGMENTS: usize = 1000;
pub const PLACEMENTS: usize = 200;

/// How line items target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// As direct-sold catalogs are: 75% target 1–4 placements, 20% a size (run of site),
    /// 4% run of network, 1% untargeted; geo on 80%, device 40%, segments 30%, section 20%,
    /// daypart 10%, IP exclusions 5%.
    Inventory,
    /// A stress case: no inventory targeting (10% excepted), 5% untargeted — every request
    /// matches hundreds of line items per 10k.
    Broad,
}

/// A catalog record from JSON, for synthetic catalogs and tests; panics on an invalid fixture.
pub fn record(kind: Kind, id: &str, owner: &str, v: Value) -> Record {
    let spec = match Spec::from_json(kind, &v) {
        Ok(s) => s,
        Err(e) => panic!("synthetic {kind:?} is invalid: {e}"),
    };
    Record {
        meta: new_meta(
            id.to_string(),
            owner.to_string(),
            Utc.timestamp_opt(1_767_225_600, 0).single().unwrap_or_default(),
        ),
        spec,
    }
}

fn pick<'a>(rng: &mut SmallRng, from: &[&'a str], n: usize) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::with_capacity(n);
    while out.len() < n.min(from.len()) {
        let v = from[rng.random_range(0..from.len())];
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn targeting(rng: &mut SmallRng, profile: Profile) -> Option<Value> {
    let untargeted = if profile == Profile::Broad { 0.05 } else { 0.01 };
    if rng.random_bool(untargeted) {
        return None;
    }
    let mut all = Vec::new();
    if profile == Profile::Inventory {
        let roll: f64 = rng.random();
        if roll < 0.75 {
            let n = rng.random_range(1..=4);
            let ps: Vec<String> = (0..n).map(|_| format!("plc-{}", rng.random_range(0..PLACEMENTS))).collect();
            all.push(json!({"placement": ps}));
        } else if roll < 0.95 {
            all.push(json!({"size": [if rng.random_bool(0.5) { "300x250" } else { "728x90" }]}));
        }
    }
    if profile == Profile::Broad || rng.random_bool(0.8) {
        let n = rng.random_range(1..=3);
        all.push(json!({"country": pick(rng, COUNTRIES, n)}));
    }
    let device_share = if profile == Profile::Broad { 0.6 } else { 0.4 };
    if rng.random_bool(device_share) {
        let n = rng.random_range(1..=2);
        all.push(json!({"device_type": pick(rng, DEVICES, n)}));
    }
    if rng.random_bool(0.3) {
        let segs: Vec<String> =
            (0..rng.random_range(1..=5)).map(|_| format!("seg-{}", rng.random_range(0..SEGMENTS))).collect();
        all.push(json!({"segment": segs}));
    }
    if rng.random_bool(0.2) {
        let n = rng.random_range(1..=3);
        all.push(json!({"key_value": {"key": "section", "values": pick(rng, SECTIONS, n)}}));
    }
    if profile == Profile::Broad && rng.random_bool(0.1) {
        let p = format!("plc-{}", rng.random_range(0..PLACEMENTS));
        all.push(json!({"any": [{"placement": [p]}, {"size": ["728x90"]}]}));
    }
    if rng.random_bool(0.05) {
        all.push(json!({"not": {"ip_cidr": ["192.0.2.0/24", "198.51.100.0/24"]}}));
    }
    if rng.random_bool(0.1) {
        all.push(json!({"daypart": {"time_zone": "Europe/Berlin", "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start_hour": 6, "end_hour": 23}]}}));
    }
    (!all.is_empty()).then(|| json!({"all": all}))
}

/// A catalog of `line_items` line items over 200 advertisers, with one publisher, one site
/// and `PLACEMENTS` placements (ids `plc-0`…).
pub fn catalog(line_items: usize, seed: u64, profile: Profile) -> Vec<Record> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = vec![
        record(Kind::Publisher, "pub", "pub", json!({"name": "p"})),
        record(
            Kind::Site,
            "site",
            "pub",
            json!({"publisher_id": "pub", "name": "s", "kind": "site", "domain": "news.example"}),
        ),
    ];
    for p in 0..PLACEMENTS {
        let size = if p % 2 == 0 { json!([{"w": 300, "h": 250}]) } else { json!([{"w": 728, "h": 90}]) };
        out.push(record(
            Kind::Placement,
            &format!("plc-{p}"),
            "pub",
            json!({"site_id": "site", "name": "p", "sizes": size,
            "formats": ["banner"], "floor_micros": 100_000}),
        ));
    }
    let advertisers = 200;
    for a in 0..advertisers {
        let adv = format!("adv-{a}");
        out.push(record(Kind::Advertiser, &adv, &adv, json!({"name": adv, "domains": [format!("adv{a}.example")]})));
        out.push(record(
            Kind::Campaign,
            &format!("cmp-{a}"),
            &adv,
            json!({"advertiser_id": adv, "name": "c", "start": "2026-01-01T00:00:00Z"}),
        ));
        for (i, (w, h)) in [(300, 250), (728, 90)].into_iter().enumerate() {
            out.push(record(Kind::Creative, &format!("cr-{a}-{i}"), &adv, json!({"advertiser_id": adv, "name": "c", "approval": "approved",
                "content": {"banner_image": {"image_url": format!("https://cdn.adv{a}.example/{w}x{h}.png")}},
                "sizes": [{"w": w, "h": h}], "click_url": format!("https://adv{a}.example/"), "landing_domain": format!("adv{a}.example")})));
        }
    }
    for i in 0..line_items {
        let a = i % advertisers;
        let mut li = json!({"campaign_id": format!("cmp-{a}"), "name": "li", "start": "2026-01-01T00:00:00Z",
            "priority": if rng.random_bool(0.1) { "sponsorship" } else { "standard" },
            "pricing": if rng.random_bool(0.2) { "cpc" } else { "cpm" },
            "rate_micros": rng.random_range(200_000..20_000_000i64), "pacing": "asap",
            "budget": {"daily_micros": 1_000_000_000_000i64},
            "creatives": [{"creative_id": format!("cr-{a}-0")}, {"creative_id": format!("cr-{a}-1")}]});
        if rng.random_bool(0.3) {
            li["frequency_caps"] = json!([{"count": 5, "window": "day"}]);
        }
        if let Some(t) = targeting(&mut rng, profile) {
            li["targeting"] = t;
        }
        out.push(record(Kind::LineItem, &format!("li-{i}"), &format!("adv-{a}"), li));
    }
    out
}

/// `n` requests: a country, usually a device, some segments and a section, one placement.
pub fn requests(n: usize, seed: u64) -> Vec<(Attributes, Slot)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let device = rng.random_bool(0.9).then(|| DEVICES[rng.random_range(0..DEVICES.len())]);
            let attrs = Attributes {
                country: Some(COUNTRIES[rng.random_range(0..8)].to_string()),
                device_type: device.and_then(|d| serde_json::from_value(json!(d)).ok()),
                os: Some(["ios", "android", "windows", "macos"][rng.random_range(0..4)].to_string()),
                domain: Some("news.example".into()),
                language: Some("en".into()),
                key_values: vec![("section".into(), SECTIONS[rng.random_range(0..SECTIONS.len())].into())],
                segments: (0..rng.random_range(0..10))
                    .map(|_| format!("seg-{}", rng.random_range(0..SEGMENTS)))
                    .collect(),
                ip: Some(std::net::IpAddr::from([10, 0, rng.random(), rng.random()])),
                ..Default::default()
            };
            let p = rng.random_range(0..PLACEMENTS);
            let size = if p % 2 == 0 { "300x250" } else { "728x90" };
            (attrs, Slot { placement_id: format!("plc-{p}"), sizes: vec![size.into()].into() })
        })
        .collect()
}

/// Frequency caps with room for everyone, so benchmarks measure the engine, not a store.
pub struct UnlimitedCaps;

impl adp_domain::FrequencyStore for UnlimitedCaps {
    fn has_room(&self, _: u64, _: &[adp_domain::CapRule], _: i64) -> bool {
        true
    }

    fn try_count(&self, _: u64, _: &[adp_domain::CapRule], _: i64) -> bool {
        true
    }
}
