//! demo: a small catalog for trying the platform — advertisers, campaigns, line items with
//! varied targeting, approved creatives, one publisher with a site and three placements.
//! Written through the catalog service, so it obeys every rule a client's writes do.

use crate::auth::Principal;
use crate::catalog::CatalogService;
use crate::error::ApiError;
use adp_domain::Kind;
use chrono::{DurationRound, TimeDelta, Utc};
use serde_json::{json, Value};

/// Placement ids the demo creates.
pub const PLACEMENTS: [&str; 3] = ["demo-mrec", "demo-leaderboard", "demo-video"];

fn creative(id: &str, adv: &str, name: &str, content: Value, sizes: Value, domain: &str) -> (Kind, Value) {
    (
        Kind::Creative,
        json!({"id": id, "advertiser_id": adv, "name": name, "approval": "approved", "content": content, "sizes": sizes,
               "click_url": format!("https://{domain}/landing?src=adplatform"), "landing_domain": domain}),
    )
}

fn objects() -> Vec<(Kind, Value)> {
    let start = Utc::now()
        .duration_trunc(TimeDelta::days(1))
        .map(|d| d - TimeDelta::days(1))
        .unwrap_or_else(|_| Utc::now())
        .to_rfc3339();
    let mrec = json!([{"w": 300, "h": 250}]);
    let leader = json!([{"w": 728, "h": 90}]);
    let video = json!([{"w": 640, "h": 360}]);
    let vast = |dur: u32| json!({"vast": {"url": "https://cdn.globex-travel.example/vast/preroll.xml", "duration_secs": dur, "mimes": ["video/mp4"]}});
    let img = |host: &str, file: &str| json!({"banner_image": {"image_url": format!("https://cdn.{host}/{file}")}});
    let mut out = vec![
        (Kind::Publisher, json!({"id": "demo-publisher", "name": "Demo Publisher", "domain": "demo-news.example"})),
        (
            Kind::Site,
            json!({"id": "demo-site", "publisher_id": "demo-publisher", "name": "Demo News", "kind": "site",
                            "domain": "demo-news.example", "categories": ["IAB12"]}),
        ),
        (
            Kind::Placement,
            json!({"id": "demo-mrec", "site_id": "demo-site", "name": "Article MREC", "sizes": mrec,
                                 "formats": ["banner"], "floor_micros": 500_000, "auction_type": "second_price"}),
        ),
        (
            Kind::Placement,
            json!({"id": "demo-leaderboard", "site_id": "demo-site", "name": "Top leaderboard", "sizes": leader,
                                 "formats": ["banner"], "floor_micros": 800_000, "auction_type": "second_price",
                                 "blocked_categories": ["IAB25"]}),
        ),
        (
            Kind::Placement,
            json!({"id": "demo-video", "site_id": "demo-site", "name": "Instream pre-roll", "sizes": video,
                                 "formats": ["video"], "floor_micros": 4_000_000, "auction_type": "first_price",
                                 "video": {"placement": "instream", "min_duration_secs": 5, "max_duration_secs": 30, "mimes": ["video/mp4"]}}),
        ),
        (
            Kind::Advertiser,
            json!({"id": "demo-acme", "name": "Acme Shoes", "domains": ["acme-shoes.example"], "categories": ["IAB18"]}),
        ),
        (
            Kind::Advertiser,
            json!({"id": "demo-globex", "name": "Globex Travel", "domains": ["globex-travel.example"], "categories": ["IAB20"]}),
        ),
        (
            Kind::Advertiser,
            json!({"id": "demo-initech", "name": "Initech Cloud", "domains": ["initech.example"], "categories": ["IAB19"]}),
        ),
        (
            Kind::Advertiser,
            json!({"id": "demo-house", "name": "Demo House Ads", "domains": ["demo-news.example"], "categories": ["IAB12"]}),
        ),
    ];
    out.extend([
        creative("demo-acme-mrec", "demo-acme", "Acme spring sale 300x250", img("acme-shoes.example", "spring-300x250.png"), mrec.clone(), "acme-shoes.example"),
        creative("demo-acme-leader", "demo-acme", "Acme spring sale 728x90", img("acme-shoes.example", "spring-728x90.png"), leader.clone(), "acme-shoes.example"),
        creative("demo-globex-preroll", "demo-globex", "Globex 15s pre-roll", vast(15), video.clone(), "globex-travel.example"),
        creative("demo-initech-leader", "demo-initech", "Initech cloud week 728x90",
                 json!({"banner_html": {"html": "<a href=\"%%CLICK_URL%%\"><img src=\"https://cdn.initech.example/cloud-week-728x90.jpg\" width=\"728\" height=\"90\"></a>"}}),
                 leader.clone(), "initech.example"),
        creative("demo-initech-mrec", "demo-initech", "Initech free trial 300x250", img("initech.example", "trial-300x250.png"), mrec.clone(), "initech.example"),
        creative("demo-globex-preroll-rtb", "demo-globex", "Globex 20s pre-roll (exchanges)", vast(20), video.clone(), "globex-travel.example"),
        creative("demo-initech-native", "demo-initech", "Initech native card",
                 json!({"native": {"title": "Try Initech Cloud free for 30 days", "body": "Servers in minutes, billing by the second.",
                                   "image_url": "https://cdn.initech.example/native-1200x627.jpg", "icon_url": "https://cdn.initech.example/icon-80.png",
                                   "cta": "Start free", "sponsored_by": "Initech"}}),
                 json!([]), "initech.example"),
        creative("demo-house-mrec", "demo-house", "Subscribe 300x250", img("demo-news.example", "subscribe-300x250.png"), mrec.clone(), "demo-news.example"),
        creative("demo-house-leader", "demo-house", "Subscribe 728x90", img("demo-news.example", "subscribe-728x90.png"), leader, "demo-news.example"),
    ]);
    let campaign = |id: &str, adv: &str, name: &str, budget: Option<i64>| {
        let mut c = json!({"id": id, "advertiser_id": adv, "name": name, "start": start});
        if let Some(b) = budget {
            c["budget_micros"] = json!(b);
        }
        (Kind::Campaign, c)
    };
    out.extend([
        campaign("demo-acme-spring", "demo-acme", "Spring sale", Some(5_000_000_000)),
        campaign("demo-globex-citybreaks", "demo-globex", "City breaks", Some(20_000_000_000)),
        campaign("demo-initech-trial", "demo-initech", "Free trial", None),
        campaign("demo-house-subscribe", "demo-house", "Subscriptions", None),
    ]);
    let line_item = |v: Value| {
        let mut li = json!({"start": start});
        if let (Some(dst), Value::Object(src)) = (li.as_object_mut(), v) {
            dst.extend(src);
        }
        (Kind::LineItem, li)
    };
    out.extend([
        // Untargeted with ample budget: fills both banner placements on any request.
        line_item(json!({"id": "demo-acme-ron", "campaign_id": "demo-acme-spring", "name": "Acme run of network",
            "priority": "standard", "pricing": "cpm", "rate_micros": 2_500_000, "pacing": "asap",
            "budget": {"daily_micros": 1_000_000_000, "time_zone": "Europe/Berlin"},
            "creative_rotation": "weighted", "creatives": [{"creative_id": "demo-acme-mrec", "weight": 1}, {"creative_id": "demo-acme-leader", "weight": 1}],
            "channels": ["direct", "rtb"]})),
        // Targeted: mobile users in Germany and Austria, capped, paced evenly.
        line_item(json!({"id": "demo-acme-dach-mobile", "campaign_id": "demo-acme-spring", "name": "Acme DACH mobile",
            "priority": "standard", "pricing": "cpm", "rate_micros": 4_000_000, "pacing": "even",
            "budget": {"daily_micros": 200_000_000, "time_zone": "Europe/Berlin"},
            "frequency_caps": [{"count": 3, "window": "day"}, {"count": 1, "window": {"seconds": 300}}],
            "targeting": {"all": [{"country": ["DE", "AT", "CH"]}, {"device_type": ["phone", "tablet"]}, {"not": {"ip_cidr": ["192.0.2.0/24"]}}]},
            "creatives": [{"creative_id": "demo-acme-mrec"}], "channels": ["direct"]})),
        // Untargeted video with ample budget: fills the instream placement; also bids over RTB.
        line_item(json!({"id": "demo-globex-preroll", "campaign_id": "demo-globex-citybreaks", "name": "Globex pre-roll",
            "priority": "standard", "pricing": "cpm", "rate_micros": 12_000_000, "pacing": "asap",
            "budget": {"daily_micros": 2_000_000_000}, "frequency_caps": [{"count": 5, "window": "day"}],
            "creatives": [{"creative_id": "demo-globex-preroll"}], "channels": ["direct", "rtb"]})),
        // A sponsorship of the leaderboard on weekday daytime, with half the share of voice.
        line_item(json!({"id": "demo-initech-takeover", "campaign_id": "demo-initech-trial", "name": "Initech leaderboard sponsorship",
            "priority": "sponsorship", "pricing": "flat", "rate_micros": 500_000_000, "pacing": "asap", "sov_percent": 50,
            "targeting": {"all": [{"placement": ["demo-leaderboard"]},
                                  {"daypart": {"time_zone": "Europe/Berlin", "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start_hour": 8, "end_hour": 20}]}}]},
            "creatives": [{"creative_id": "demo-initech-leader"}], "channels": ["direct"]})),
        // CPC retargeting for a segment and a section, and a private deal over RTB.
        line_item(json!({"id": "demo-initech-retarget", "campaign_id": "demo-initech-trial", "name": "Initech retargeting",
            "priority": "standard", "pricing": "cpc", "rate_micros": 1_200_000, "pacing": "asap",
            "targeting": {"any": [{"segment": ["initech-visitors"]}, {"key_value": {"key": "section", "values": ["technology", "business"]}}]},
            "creatives": [{"creative_id": "demo-initech-mrec"}], "channels": ["direct", "rtb"], "deal_ids": ["demo-deal-1"]})),
        // Exchange-only (OpenRTB) line items without frequency caps, so that any bid request —
        // with or without a user id — for video or native gets a bid above common floors.
        line_item(json!({"id": "demo-globex-rtb-video", "campaign_id": "demo-globex-citybreaks", "name": "Globex video on exchanges",
            "priority": "standard", "pricing": "cpm", "rate_micros": 8_000_000, "pacing": "asap",
            "budget": {"daily_micros": 1_000_000_000},
            "creatives": [{"creative_id": "demo-globex-preroll-rtb"}], "channels": ["rtb"]})),
        line_item(json!({"id": "demo-initech-native-rtb", "campaign_id": "demo-initech-trial", "name": "Initech native on exchanges",
            "priority": "standard", "pricing": "cpm", "rate_micros": 3_000_000, "pacing": "asap",
            "budget": {"daily_micros": 500_000_000},
            "creatives": [{"creative_id": "demo-initech-native"}], "channels": ["rtb"]})),
        // House ads fill whatever nothing else takes.
        line_item(json!({"id": "demo-house-fill", "campaign_id": "demo-house-subscribe", "name": "House fill",
            "priority": "house", "pricing": "cpm", "rate_micros": 0, "pacing": "asap", "creative_rotation": "even",
            "creatives": [{"creative_id": "demo-house-mrec"}, {"creative_id": "demo-house-leader"}], "channels": ["direct"]})),
    ]);
    out
}

/// Seeds the demo catalog if the catalog is empty. Returns the number of objects written
/// (0 when the catalog already had objects).
pub async fn seed_if_empty(catalog: &CatalogService, store: &dyn adp_domain::CatalogStore) -> Result<usize, ApiError> {
    if store.catalog_version().await? > 0 {
        return Ok(0);
    }
    let admin = Principal::Admin { key_id: "demo-seed".into() };
    let objects = objects();
    let n = objects.len();
    for (kind, body) in objects {
        catalog.create(&admin, kind, body).await.map_err(|e| {
            ApiError::internal(format!("demo {kind:?} rejected: {} ({:?}: {})", e.message, e.field, e.code))
        })?;
    }
    tracing::info!(objects = n, "demo catalog seeded");
    Ok(n)
}
