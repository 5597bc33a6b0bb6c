//! snapshot: the catalog compiled for serving — line items joined with their campaign,
//! advertiser and creatives, placements by id, and the targeting index. Immutable once built;
//! a new one is built off the hot path on every catalog change and swapped in atomically.

use crate::delivery::{CounterRegistry, CreativeCounters, LineItemCounters};
use crate::index::TargetingIndex;
use adp_domain::{
    AuctionType, CapRule, Channel, CreativeContent, Expr, Format, Kind, Micros, Pacing, Pricing, Priority, Record,
    Rotation, Spec, Status, VideoSettings,
};
use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::sync::Arc;

/// A stable 64-bit hash (FNV-1a) for naming capped entities and hashing user ids.
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[derive(Debug)]
pub struct CreativeRt {
    pub id: String,
    pub advertiser_id: String,
    pub content: CreativeContent,
    pub format: Format,
    pub sizes: Vec<(u32, u32)>,
    pub click_url: String,
    pub landing_domain: String,
    pub categories: Vec<String>,
    pub counters: Arc<CreativeCounters>,
}

#[derive(Debug)]
pub struct LineItemRt {
    pub ordinal: u32,
    pub id: String,
    pub campaign_id: String,
    pub advertiser_id: String,
    pub priority: Priority,
    pub pricing: Pricing,
    pub rate_micros: Micros,
    /// The later of the line item's and the campaign's start.
    pub start: DateTime<Utc>,
    /// The earlier of the line item's and the campaign's end.
    pub end: Option<DateTime<Utc>>,
    /// `start` and `end` in Unix seconds (`i64::MAX` when open-ended), for the hot path.
    pub start_secs: i64,
    pub end_secs: i64,
    pub daily_budget: Option<Micros>,
    pub lifetime_budget: Option<Micros>,
    pub campaign_budget: Option<Micros>,
    pub time_zone: chrono_tz::Tz,
    pub pacing: Pacing,
    pub sov_percent: u8,
    /// Line item caps and campaign caps together.
    pub caps: Vec<CapRule>,
    pub rotation: Rotation,
    /// (creative index, weight) of approved, active creatives.
    pub creatives: Vec<(u32, u32)>,
    pub direct: bool,
    pub rtb: bool,
    pub deal_ids: Vec<String>,
    pub adomains: Vec<String>,
    /// Advertiser categories (creative categories are added per creative).
    pub categories: Vec<String>,
    pub counters: Arc<LineItemCounters>,
    pub campaign_counters: Arc<LineItemCounters>,
    pub targeting: Option<Expr>,
}

#[derive(Debug, Clone)]
pub struct PlacementRt {
    pub id: String,
    pub site_id: String,
    pub publisher_id: String,
    pub domain: Option<String>,
    pub bundle: Option<String>,
    pub sizes: Vec<(u32, u32)>,
    pub size_keys: std::sync::Arc<[String]>,
    pub formats: Vec<Format>,
    pub floor_micros: Micros,
    pub blocked_categories: Vec<String>,
    pub blocked_adomains: Vec<String>,
    pub auction_type: AuctionType,
    pub allow_same_advertiser: bool,
    pub video: Option<VideoSettings>,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    pub line_items: Vec<LineItemRt>,
    pub creatives: Vec<CreativeRt>,
    pub placements: FxHashMap<String, PlacementRt>,
    pub index: TargetingIndex,
    /// Line item id → position in `line_items`.
    pub line_item_by_id: FxHashMap<String, u32>,
    /// Per placement: the direct line items that can serve there (a creative fits, nothing
    /// blocks them, their placement and size targeting allows it), best rank first — tier,
    /// flat before priced, then eCPM as of the build. The ranked fast path walks this.
    pub ranked: FxHashMap<String, Vec<u32>>,
    /// Unix milliseconds when this snapshot was built (CTR-based ranks age).
    pub built_at_ms: i64,
}

fn cap_rules(entity: u64, caps: &[adp_domain::FrequencyCap]) -> impl Iterator<Item = CapRule> + '_ {
    caps.iter().map(move |c| CapRule { entity, count: c.count, window: c.window })
}

fn later(a: DateTime<Utc>, b: DateTime<Utc>) -> DateTime<Utc> {
    a.max(b)
}

fn earlier(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Snapshot {
    /// Compiles the servable part of the catalog: active line items of active campaigns and
    /// advertisers with at least one approved, active creative; active placements of active
    /// sites and publishers.
    pub fn build(version: u64, records: &[Record], counters: &CounterRegistry) -> Snapshot {
        let mut by_kind: HashMap<Kind, HashMap<&str, &Record>> = HashMap::new();
        for r in records {
            by_kind.entry(r.spec.kind()).or_default().insert(r.meta.id.as_str(), r);
        }
        let get = |kind: Kind, id: &str| by_kind.get(&kind).and_then(|m| m.get(id)).copied();
        let active = |r: &Record| r.spec.status() == Status::Active;

        let mut creatives = Vec::new();
        let mut creative_ix: HashMap<&str, u32> = HashMap::new();
        for r in by_kind.get(&Kind::Creative).into_iter().flat_map(|m| m.values()) {
            let Spec::Creative(c) = &r.spec else { continue };
            if !active(r) || c.approval != adp_domain::Approval::Approved {
                continue;
            }
            creative_ix.insert(r.meta.id.as_str(), creatives.len() as u32);
            creatives.push(CreativeRt {
                id: r.meta.id.clone(),
                advertiser_id: c.advertiser_id.clone(),
                format: c.content.format(),
                content: c.content.clone(),
                sizes: c.sizes.iter().map(|s| (s.w, s.h)).collect(),
                click_url: c.click_url.clone(),
                landing_domain: c.landing_domain.clone(),
                categories: c.categories.clone(),
                counters: counters.creative(&r.meta.id),
            });
        }

        let mut line_items = Vec::new();
        let mut ids: Vec<&Record> =
            by_kind.get(&Kind::LineItem).into_iter().flat_map(|m| m.values().copied()).collect();
        ids.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
        for r in ids {
            let Spec::LineItem(li) = &r.spec else { continue };
            let Some(cr) = get(Kind::Campaign, &li.campaign_id) else { continue };
            let Spec::Campaign(campaign) = &cr.spec else { continue };
            let Some(ar) = get(Kind::Advertiser, &campaign.advertiser_id) else { continue };
            let Spec::Advertiser(adv) = &ar.spec else { continue };
            if !(active(r) && active(cr) && active(ar)) {
                continue;
            }
            let assigned: Vec<(u32, u32)> = li
                .creatives
                .iter()
                .filter_map(|a| creative_ix.get(a.creative_id.as_str()).map(|ix| (*ix, a.weight.max(1))))
                .filter(|(ix, _)| creatives[*ix as usize].advertiser_id == campaign.advertiser_id)
                .collect();
            if assigned.is_empty() {
                continue;
            }
            let time_zone = li.budget.time_zone.parse().unwrap_or(chrono_tz::UTC);
            counters.set_time_zone(&r.meta.id, time_zone);
            let li_entity = stable_hash(&["li", &r.meta.id]);
            let cmp_entity = stable_hash(&["cmp", &cr.meta.id]);
            let caps = cap_rules(li_entity, &li.frequency_caps)
                .chain(cap_rules(cmp_entity, &campaign.frequency_caps))
                .collect();
            line_items.push(LineItemRt {
                ordinal: line_items.len() as u32,
                id: r.meta.id.clone(),
                campaign_id: cr.meta.id.clone(),
                advertiser_id: ar.meta.id.clone(),
                priority: li.priority,
                pricing: li.pricing,
                rate_micros: li.rate_micros,
                start: later(li.start, campaign.start),
                end: earlier(li.end, campaign.end),
                start_secs: later(li.start, campaign.start).timestamp(),
                end_secs: earlier(li.end, campaign.end).map_or(i64::MAX, |e| e.timestamp()),
                daily_budget: li.budget.daily_micros,
                lifetime_budget: li.budget.lifetime_micros,
                campaign_budget: campaign.budget_micros,
                time_zone,
                pacing: li.pacing,
                sov_percent: li.sov_percent.unwrap_or(100),
                caps,
                rotation: li.creative_rotation,
                creatives: assigned,
                direct: li.channels.contains(&Channel::Direct),
                rtb: li.channels.contains(&Channel::Rtb),
                deal_ids: li.deal_ids.clone(),
                adomains: adv.domains.clone(),
                categories: adv.categories.clone(),
                counters: counters.line_item(&r.meta.id),
                campaign_counters: counters.campaign(&cr.meta.id),
                targeting: li.targeting.clone(),
            });
        }

        let mut placements = FxHashMap::default();
        for r in by_kind.get(&Kind::Placement).into_iter().flat_map(|m| m.values()) {
            let Spec::Placement(p) = &r.spec else { continue };
            let Some(sr) = get(Kind::Site, &p.site_id) else { continue };
            let Spec::Site(site) = &sr.spec else { continue };
            let Some(pr) = get(Kind::Publisher, &site.publisher_id) else { continue };
            if !(active(r) && active(sr) && active(pr)) {
                continue;
            }
            let sizes: Vec<(u32, u32)> = p.sizes.iter().map(|s| (s.w, s.h)).collect();
            placements.insert(
                r.meta.id.clone(),
                PlacementRt {
                    id: r.meta.id.clone(),
                    site_id: sr.meta.id.clone(),
                    publisher_id: pr.meta.id.clone(),
                    domain: site.domain.clone(),
                    bundle: site.bundle.clone(),
                    size_keys: sizes.iter().map(|(w, h)| format!("{w}x{h}")).collect(),
                    sizes,
                    formats: p.formats.clone(),
                    floor_micros: p.floor_micros,
                    blocked_categories: p.blocked_categories.clone(),
                    blocked_adomains: p.blocked_adomains.clone(),
                    auction_type: p.auction_type,
                    allow_same_advertiser: p.allow_same_advertiser,
                    video: p.video.clone(),
                },
            );
        }
        let index =
            TargetingIndex::build(line_items.len(), line_items.iter().map(|li| (li.ordinal, li.targeting.as_ref())));
        let line_item_by_id = line_items.iter().map(|li| (li.id.clone(), li.ordinal)).collect();
        let mut ranked = FxHashMap::default();
        for (pid, p) in &placements {
            let mut list: Vec<u32> = line_items
                .iter()
                .filter(|li| {
                    li.direct
                        && !li.adomains.iter().any(|d| p.blocked_adomains.contains(d))
                        && !li.categories.iter().any(|c| p.blocked_categories.contains(c))
                        && li.creatives.iter().any(|(c, _)| crate::pipeline::creative_fits(&creatives[*c as usize], p))
                        && index.could_match_slot(li.ordinal, pid, &p.size_keys)
                })
                .map(|li| li.ordinal)
                .collect();
            list.sort_by_key(|&i| crate::pipeline::rank_key(&line_items[i as usize]));
            ranked.insert(pid.clone(), list);
        }
        Snapshot {
            version,
            line_items,
            creatives,
            placements,
            index,
            line_item_by_id,
            ranked,
            built_at_ms: Utc::now().timestamp_millis(),
        }
    }
}

/// Hashes a user id into the key frequency caps and events use (never the id itself); stable
/// across processes and versions.
pub fn user_key(user_id: &str) -> u64 {
    stable_hash(&["user", user_id])
}
