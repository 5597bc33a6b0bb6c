//! pipeline: the selection of one ad per placement, as small pure stages over a per-request
//! context — match → flight and status → placement fit → budget and pacing → frequency caps →
//! rank → auction → creative rotation. Each stage only narrows the candidate list; when a
//! stage empties it, that stage names the no-fill reason.

use crate::index::Scratch;
use crate::pacing::within_budget;
use crate::request::{Attributes, MatchInput, Slot};
use crate::snapshot::{CreativeRt, LineItemRt, PlacementRt, Snapshot};
use adp_domain::{AuctionType, CapRule, Format, FrequencyStore, Micros, Pacing, Pricing, Priority, Rotation};
use chrono::{DateTime, Datelike, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::Ordering;

/// Why a placement was not filled (machine-readable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoFill {
    UnknownPlacement,
    NoMatchingLineItem,
    OutOfFlight,
    NoFittingCreative,
    BelowFloor,
    Blocked,
    BudgetExhausted,
    Paced,
    FrequencyCapped,
    AdvertiserAlreadyShown,
    /// RTB: no line item may bid on the imp's deals, and the auction is private.
    NoMatchingDeal,
}

impl NoFill {
    pub fn code(self) -> &'static str {
        match self {
            NoFill::UnknownPlacement => "unknown_placement",
            NoFill::NoMatchingLineItem => "no_matching_line_item",
            NoFill::OutOfFlight => "out_of_flight",
            NoFill::NoFittingCreative => "no_fitting_creative",
            NoFill::BelowFloor => "below_floor",
            NoFill::Blocked => "blocked",
            NoFill::BudgetExhausted => "budget_exhausted",
            NoFill::Paced => "paced",
            NoFill::FrequencyCapped => "frequency_capped",
            NoFill::AdvertiserAlreadyShown => "advertiser_already_shown",
            NoFill::NoMatchingDeal => "no_matching_deal",
        }
    }
}

/// The ad chosen for a placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Win {
    pub line_item: u32,
    pub creative: u32,
    /// Clearing price per thousand impressions (eCPM), micros.
    pub price_micros: Micros,
    /// The winner's own eCPM, micros.
    pub bid_micros: Micros,
    /// What one impression spends from the line item's budget (cpm: price / 1000; else 0).
    pub cost_per_impression: Micros,
    /// Minute (Unix minutes) at which the spend was booked as pending.
    pub pending_minute: i64,
    /// RTB: the position in the slot's `deals` of the deal this bid is for.
    pub deal: Option<u16>,
}

/// A deal offered on an RTB imp (`imp.pmp.deals`), its floor already in micros of the
/// platform currency per thousand impressions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DealOffer {
    pub id: String,
    pub floor_micros: Micros,
}

/// How a slot is sold: direct (`/v1/decide`) or in an OpenRTB auction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SlotChannel {
    #[default]
    Direct,
    /// Only RTB-enabled line items bid, at their own eCPM (the exchange runs the auction);
    /// deal line items bid only on their deals; open-auction ones only when the auction is not
    /// private. Frequency caps are checked, not counted (a bid is not an impression).
    Rtb { deals: Vec<DealOffer>, private_auction: bool },
}

/// One placement of a decision request, resolved against the snapshot.
pub struct SlotRequest<'a> {
    pub placement: Option<&'a PlacementRt>,
    pub slot: Slot,
    pub channel: SlotChannel,
}

pub struct DecideInput<'a> {
    pub attrs: &'a Attributes,
    pub user_key: Option<u64>,
    pub now: DateTime<Utc>,
    pub slots: &'a [SlotRequest<'a>],
    /// Decide without counting anything (test requests): no caps counted, no pending spend.
    pub dry_run: bool,
}

/// Per-thread working memory of the pipeline; reuse it across requests.
pub struct EngineScratch {
    index: Scratch,
    matched: Vec<u32>,
    cands: Vec<Candidate>,
    shown: Vec<u32>,
    pub rng: SmallRng,
    /// Always take the exhaustive path (match everything, then rank), e.g. to compare.
    pub exhaustive: bool,
}

impl Default for EngineScratch {
    fn default() -> Self {
        EngineScratch {
            index: Scratch::default(),
            matched: Vec::new(),
            cands: Vec::new(),
            shown: Vec::new(),
            rng: SmallRng::from_os_rng(),
            exhaustive: false,
        }
    }
}

impl EngineScratch {
    pub fn seeded(seed: u64) -> Self {
        EngineScratch { rng: SmallRng::seed_from_u64(seed), ..Default::default() }
    }
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    li: u32,
    ecpm: Micros,
    /// Flat-priced items (only those that won their share-of-voice draw take part) outrank
    /// priced ones in their tier.
    sov_winner: bool,
    tiebreak: u32,
    tier: u8,
}

/// CTR prior: one click per thousand impressions, worth a thousand impressions of evidence.
const PRIOR_CLICKS: f64 = 1.0;
const PRIOR_IMPRESSIONS: f64 = 1000.0;

pub fn ctr_estimate(li: &LineItemRt) -> f64 {
    let clicks = li.counters.clicks.load(Ordering::Relaxed) as f64;
    let imps = li.counters.impressions.load(Ordering::Relaxed) as f64;
    (clicks + PRIOR_CLICKS) / (imps + PRIOR_IMPRESSIONS)
}

/// Effective price per thousand impressions, micros.
pub fn ecpm(li: &LineItemRt) -> Micros {
    match li.pricing {
        Pricing::Cpm => li.rate_micros,
        Pricing::Cpc => (li.rate_micros as f64 * ctr_estimate(li) * 1000.0).round() as Micros,
        Pricing::Flat => 0,
    }
}

pub(crate) fn creative_fits(c: &CreativeRt, p: &PlacementRt) -> bool {
    if !p.formats.contains(&c.format) || c.categories.iter().any(|cat| p.blocked_categories.contains(cat)) {
        return false;
    }
    match c.format {
        Format::Banner => p.sizes.is_empty() || c.sizes.iter().any(|s| p.sizes.contains(s)),
        Format::Video => match (&p.video, &c.content) {
            (Some(v), adp_domain::CreativeContent::Vast { duration_secs, .. }) => {
                *duration_secs >= v.min_duration_secs && *duration_secs <= v.max_duration_secs
            }
            _ => true,
        },
        Format::Native => true,
    }
}

/// The budget day of `now` in the line item's time zone (days since 0001-01-01).
pub fn budget_day(li: &LineItemRt, now: DateTime<Utc>) -> i64 {
    i64::from(now.with_timezone(&li.time_zone).date_naive().num_days_from_ce())
}

/// What one more delivery may cost, for the budget check: one impression at the line item's
/// own rate (CPM), one click (CPC), nothing per impression (flat).
fn check_cost(li: &LineItemRt) -> Micros {
    match li.pricing {
        Pricing::Cpm => li.rate_micros / 1000,
        Pricing::Cpc => li.rate_micros,
        Pricing::Flat => 0,
    }
}

fn has_budget(li: &LineItemRt, now: DateTime<Utc>, cost: Micros) -> bool {
    if li.daily_budget.is_none() && li.lifetime_budget.is_none() && li.campaign_budget.is_none() {
        return true;
    }
    if li.counters.lease.is_enabled() || li.campaign_counters.lease.is_enabled() {
        // Distributed: the leased slice bounds what this process reserves; the shared spend
        // (synced with each lease renewal) stops CPC line items, which reserve nothing.
        let own = li.daily_budget.is_some() || li.lifetime_budget.is_some();
        return (!own || li.counters.lease.allows(cost))
            && (li.campaign_budget.is_none() || li.campaign_counters.lease.allows(cost))
            && li.daily_budget.is_none_or(|b| li.counters.spent_on(budget_day(li, now)) < b)
            && li.lifetime_budget.is_none_or(|b| li.counters.spent_lifetime() < b)
            && li.campaign_budget.is_none_or(|b| li.campaign_counters.spent_lifetime() < b);
    }
    let minute = now.timestamp().div_euclid(60);
    let pending = li.counters.pending(minute);
    (li.daily_budget.is_none()
        || within_budget(li.counters.spent_on(budget_day(li, now)), pending, cost, li.daily_budget))
        && within_budget(li.counters.spent_lifetime(), pending, cost, li.lifetime_budget)
        // The campaign's pending spend covers all its line items.
        && (li.campaign_budget.is_none()
            || within_budget(
                li.campaign_counters.spent_lifetime(),
                li.campaign_counters.pending(minute),
                cost,
                li.campaign_budget,
            ))
}

/// Decides every slot of a request. Outcomes are in slot order.
pub fn decide(
    snap: &Snapshot,
    input: &DecideInput<'_>,
    caps: &dyn FrequencyStore,
    s: &mut EngineScratch,
    out: &mut Vec<Result<Win, NoFill>>,
) {
    out.clear();
    s.shown.clear();
    for slot in input.slots {
        let outcome = match slot.placement {
            None => Err(NoFill::UnknownPlacement),
            Some(p) => match snap
                .ranked
                .get(p.id.as_str())
                .filter(|_| !s.exhaustive && !p.id.is_empty() && slot.channel == SlotChannel::Direct)
            {
                Some(list) => decide_ranked(snap, input, p, &slot.slot, list, caps, s),
                None => decide_slot(snap, input, p, slot, caps, s),
            },
        };
        if let Ok(w) = &outcome {
            s.shown.push(w.line_item);
        }
        out.push(outcome);
    }
}

/// The frequency cap rules of every line item whose targeting matches one of the request's
/// slots (a superset of those the engine may check), without duplicates. Distributed mode loads
/// exactly these counters from the shared store before deciding.
pub fn cap_rules_in_play(snap: &Snapshot, input: &DecideInput<'_>, s: &mut EngineScratch, out: &mut Vec<CapRule>) {
    out.clear();
    if input.user_key.is_none() {
        return;
    }
    for slot in input.slots {
        if slot.placement.is_none() {
            continue;
        }
        s.matched.clear();
        snap.index.matches(
            &MatchInput { attrs: input.attrs, slot: &slot.slot, now: input.now },
            &mut s.index,
            &mut s.matched,
        );
        for &i in &s.matched {
            for rule in &snap.line_items[i as usize].caps {
                if !out.contains(rule) {
                    out.push(*rule);
                }
            }
        }
    }
}

/// RTB terms of `li` on a slot: the deal it would bid on (if any) and the floor that binds it,
/// or `None` when it may not bid. Deal line items take the first offered deal they target
/// whose floor their eCPM meets (else the first they target); others bid in the open auction.
fn rtb_terms(li: &LineItemRt, p: &PlacementRt, channel: &SlotChannel) -> Option<(Option<u16>, Micros)> {
    let SlotChannel::Rtb { deals, private_auction } = channel else { return Some((None, p.floor_micros)) };
    if li.deal_ids.is_empty() {
        return (!private_auction).then_some((None, p.floor_micros));
    }
    let e = ecpm(li);
    let mut first = None;
    for (i, d) in deals.iter().enumerate().take(usize::from(u16::MAX)) {
        if li.deal_ids.contains(&d.id) {
            let floor = if d.floor_micros > 0 { d.floor_micros } else { p.floor_micros };
            if e >= floor {
                return Some((Some(i as u16), floor));
            }
            first.get_or_insert((Some(i as u16), floor));
        }
    }
    first
}

fn decide_slot(
    snap: &Snapshot,
    input: &DecideInput<'_>,
    p: &PlacementRt,
    slot_req: &SlotRequest<'_>,
    caps: &dyn FrequencyStore,
    s: &mut EngineScratch,
) -> Result<Win, NoFill> {
    let now = input.now;
    let now_secs = now.timestamp();
    let slot = &slot_req.slot;
    let rtb = matches!(slot_req.channel, SlotChannel::Rtb { .. });
    // match
    s.matched.clear();
    snap.index.matches(&MatchInput { attrs: input.attrs, slot, now }, &mut s.index, &mut s.matched);
    if s.matched.is_empty() {
        return Err(NoFill::NoMatchingLineItem);
    }
    let lis = &snap.line_items;
    let stage = |matched: &mut Vec<u32>, reason: NoFill, keep: &mut dyn FnMut(&LineItemRt) -> bool| {
        matched.retain(|&i| keep(&lis[i as usize]));
        if matched.is_empty() {
            Err(reason)
        } else {
            Ok(())
        }
    };
    // flight and status (status was settled when the snapshot was built)
    stage(&mut s.matched, NoFill::OutOfFlight, &mut |li| {
        // Flat-priced and house line items have no price to bid with.
        let channel_ok =
            if rtb { li.rtb && li.pricing != Pricing::Flat && li.priority != Priority::House } else { li.direct };
        channel_ok && li.start_secs <= now_secs && now_secs < li.end_secs
    })?;
    // placement fit: advertiser and categories not blocked, a creative that fits, floor met
    if !p.blocked_adomains.is_empty() || !p.blocked_categories.is_empty() {
        stage(&mut s.matched, NoFill::Blocked, &mut |li| {
            !li.adomains.iter().any(|d| p.blocked_adomains.contains(d))
                && !li.categories.iter().any(|c| p.blocked_categories.contains(c))
        })?;
    }
    stage(&mut s.matched, NoFill::NoFittingCreative, &mut |li| {
        li.creatives.iter().any(|(c, _)| creative_fits(&snap.creatives[*c as usize], p))
    })?;
    if rtb {
        stage(&mut s.matched, NoFill::NoMatchingDeal, &mut |li| rtb_terms(li, p, &slot_req.channel).is_some())?;
        // Every RTB bid meets its floor: the imp's, or its deal's.
        stage(&mut s.matched, NoFill::BelowFloor, &mut |li| {
            rtb_terms(li, p, &slot_req.channel).is_some_and(|(_, floor)| ecpm(li) >= floor)
        })?;
    } else if p.floor_micros > 0 {
        // Floors bind priced (standard) line items; sponsorships and house ads are sold otherwise.
        stage(&mut s.matched, NoFill::BelowFloor, &mut |li| {
            li.priority != Priority::Standard || ecpm(li) >= p.floor_micros
        })?;
    }
    if !s.shown.is_empty() && !p.allow_same_advertiser {
        let shown = &s.shown;
        stage(&mut s.matched, NoFill::AdvertiserAlreadyShown, &mut |li| {
            !shown.iter().any(|&w| lis[w as usize].advertiser_id == li.advertiser_id)
        })?;
    }
    // rank: tier, then share-of-voice winners, then eCPM, then a random tie-break
    s.cands.clear();
    for &i in &s.matched {
        let li = &lis[i as usize];
        // A flat-priced line item takes part in its share of auctions (share of voice).
        let sov_winner = li.pricing == Pricing::Flat;
        if sov_winner && s.rng.random_range(0..100u32) >= u32::from(li.sov_percent) {
            continue;
        }
        s.cands.push(Candidate {
            li: i,
            ecpm: ecpm(li),
            sov_winner,
            tiebreak: s.rng.random(),
            tier: tier(li.priority),
        });
    }
    // Budget, pacing and frequency checks cost more: apply them lazily, best candidate first,
    // until a winner and (for the second-price auction) its runner-up are found.
    let mut first_reason = None;
    let eligible = |c: &Candidate, rng: &mut SmallRng| -> Result<(), NoFill> {
        let li = &lis[c.li as usize];
        let cost = check_cost(li);
        if !has_budget(li, now, cost) {
            return Err(NoFill::BudgetExhausted);
        }
        if li.pacing == Pacing::Even && !li.counters.throttle.admit(rng.random()) {
            return Err(NoFill::Paced);
        }
        if !li.caps.is_empty() && !input.user_key.is_some_and(|u| caps.has_room(u, &li.caps, now_secs)) {
            return Err(NoFill::FrequencyCapped);
        }
        Ok(())
    };
    let (winner, winner_at) = loop {
        let Some(best) = best_candidate(&s.cands, None) else {
            return Err(first_reason.unwrap_or(NoFill::Paced));
        };
        let c = s.cands[best];
        match eligible(&c, &mut s.rng) {
            Ok(()) => break (c, best),
            Err(reason) => {
                first_reason.get_or_insert(reason);
                s.cands.swap_remove(best);
            }
        }
    };
    s.cands.swap_remove(winner_at);
    let li = &lis[winner.li as usize];
    if rtb {
        // The exchange runs the auction: bid the winner's own eCPM on its deal (or openly).
        let deal = rtb_terms(li, p, &slot_req.channel).and_then(|(d, _)| d);
        let mut win = settle(snap, input, p, li, winner, winner.ecpm, &slot_req.channel, s)?;
        win.deal = deal;
        return Ok(win);
    }
    // The winner must still pass its caps atomically (another request may have just counted).
    if !li.caps.is_empty() && !input.dry_run && !input.user_key.is_some_and(|u| caps.try_count(u, &li.caps, now_secs)) {
        return Err(NoFill::FrequencyCapped);
    }
    let runner_up = loop {
        let Some(next) = best_candidate(&s.cands, Some(winner.tier)) else { break 0 };
        let c = s.cands[next];
        match eligible(&c, &mut s.rng) {
            Ok(()) => break c.ecpm,
            Err(_) => {
                s.cands.swap_remove(next);
            }
        }
    };
    settle(snap, input, p, li, winner, runner_up, &SlotChannel::Direct, s)
}

/// The best remaining candidate (optionally only of one tier): lowest tier number, then
/// share-of-voice winners, then highest eCPM, then tie-break.
fn best_candidate(cands: &[Candidate], only_tier: Option<u8>) -> Option<usize> {
    let key = |c: &Candidate| (std::cmp::Reverse(c.tier), c.sov_winner, c.ecpm, c.tiebreak);
    cands
        .iter()
        .enumerate()
        .filter(|(_, c)| only_tier.is_none_or(|t| c.tier == t))
        .max_by_key(|(_, c)| key(c))
        .map(|(i, _)| i)
}

/// The static rank of a line item: tier, flat before priced, eCPM (as of now) high to low.
pub(crate) fn rank_key(li: &LineItemRt) -> (u8, bool, std::cmp::Reverse<Micros>, u32) {
    (tier(li.priority), li.pricing != Pricing::Flat, std::cmp::Reverse(ecpm(li)), li.ordinal)
}

/// How far down the pipeline a candidate got, for the no-fill reason of the ranked path.
fn stage_order(r: NoFill) -> u8 {
    match r {
        NoFill::UnknownPlacement | NoFill::NoMatchingLineItem => 0,
        NoFill::OutOfFlight => 1,
        NoFill::NoFittingCreative | NoFill::Blocked => 2,
        NoFill::BelowFloor => 3,
        NoFill::AdvertiserAlreadyShown => 4,
        NoFill::BudgetExhausted => 5,
        NoFill::Paced => 6,
        NoFill::FrequencyCapped => 7,
        NoFill::NoMatchingDeal => 2,
    }
}

/// The ranked fast path for a known placement: walk its line items best rank first, check
/// each fully, and stop as soon as the winner's tie group and a runner-up (for the
/// second-price auction) are found. Same stages and outcome as `decide_slot`; ties at the
/// top are broken at random among up to eight equals.
#[allow(clippy::too_many_arguments)]
fn decide_ranked(
    snap: &Snapshot,
    input: &DecideInput<'_>,
    p: &PlacementRt,
    slot: &Slot,
    list: &[u32],
    caps: &dyn FrequencyStore,
    s: &mut EngineScratch,
) -> Result<Win, NoFill> {
    let now = input.now;
    let now_secs = now.timestamp();
    let m = MatchInput { attrs: input.attrs, slot, now };
    snap.index.prepare(&m, &mut s.index);
    let lis = &snap.line_items;
    let mut furthest: Option<NoFill> = None;
    let mut note = |r: NoFill| {
        if furthest.is_none_or(|f| stage_order(r) > stage_order(f)) {
            furthest = Some(r);
        }
    };
    s.cands.clear();
    let mut top: Option<(u8, bool, Micros)> = None;
    let mut runner_up = None;
    for &i in list {
        let li = &lis[i as usize];
        let t = tier(li.priority);
        let flat = li.pricing == Pricing::Flat;
        // The runner-up must come from the winner's tier.
        if top.is_some_and(|(wt, _, _)| t != wt) {
            break;
        }
        if !(li.start_secs <= now_secs && now_secs < li.end_secs) {
            note(NoFill::OutOfFlight);
            continue;
        }
        if !snap.index.item_matches(i, &m, &mut s.index) {
            note(NoFill::NoMatchingLineItem);
            continue;
        }
        let e = ecpm(li);
        if p.floor_micros > 0 && li.priority == Priority::Standard && e < p.floor_micros {
            note(NoFill::BelowFloor);
            continue;
        }
        if !p.allow_same_advertiser && s.shown.iter().any(|&w| lis[w as usize].advertiser_id == li.advertiser_id) {
            note(NoFill::AdvertiserAlreadyShown);
            continue;
        }
        if flat && s.rng.random_range(0..100u32) >= u32::from(li.sov_percent) {
            note(NoFill::Paced);
            continue;
        }
        let cost = check_cost(li);
        if !has_budget(li, now, cost) {
            note(NoFill::BudgetExhausted);
            continue;
        }
        if li.pacing == Pacing::Even && !li.counters.throttle.admit(s.rng.random()) {
            note(NoFill::Paced);
            continue;
        }
        if !li.caps.is_empty() && !input.user_key.is_some_and(|u| caps.has_room(u, &li.caps, now_secs)) {
            note(NoFill::FrequencyCapped);
            continue;
        }
        let key = (t, flat, e);
        match top {
            None => {
                top = Some(key);
                s.cands.push(Candidate { li: i, ecpm: e, sov_winner: flat, tiebreak: 0, tier: t });
            }
            Some(k) if k == key => {
                if s.cands.len() < 8 {
                    s.cands.push(Candidate { li: i, ecpm: e, sov_winner: flat, tiebreak: 0, tier: t });
                }
            }
            Some(_) => {
                runner_up = Some(e);
                break;
            }
        }
    }
    if s.cands.is_empty() {
        return Err(furthest.unwrap_or(NoFill::NoMatchingLineItem));
    }
    let pick = if s.cands.len() > 1 { s.rng.random_range(0..s.cands.len()) } else { 0 };
    let winner = s.cands[pick];
    let runner_up = if s.cands.len() > 1 { winner.ecpm } else { runner_up.unwrap_or(0) };
    let li = &lis[winner.li as usize];
    if !li.caps.is_empty() && !input.dry_run && !input.user_key.is_some_and(|u| caps.try_count(u, &li.caps, now_secs)) {
        return Err(NoFill::FrequencyCapped);
    }
    settle(snap, input, p, li, winner, runner_up, &SlotChannel::Direct, s)
}

/// Prices the auction, picks the creative and books pending spend.
#[allow(clippy::too_many_arguments)]
fn settle(
    snap: &Snapshot,
    input: &DecideInput<'_>,
    p: &PlacementRt,
    li: &LineItemRt,
    winner: Candidate,
    runner_up: Micros,
    channel: &SlotChannel,
    s: &mut EngineScratch,
) -> Result<Win, NoFill> {
    let price = match (li.pricing, li.priority, p.auction_type) {
        _ if matches!(channel, SlotChannel::Rtb { .. }) => winner.ecpm,
        (Pricing::Flat, _, _) | (_, Priority::House, _) => 0,
        (_, _, AuctionType::FirstPrice) => winner.ecpm,
        (_, _, AuctionType::SecondPrice) => (runner_up + 1).max(p.floor_micros).min(winner.ecpm),
    };
    let creative = rotate(snap, li, p, &mut s.rng).ok_or(NoFill::NoFittingCreative)?;
    // RTB wins are paid per impression whatever the line item's pricing (it bid an eCPM).
    let rtb = matches!(channel, SlotChannel::Rtb { .. });
    let cost_per_impression = if li.pricing == Pricing::Cpm || rtb { price / 1000 } else { 0 };
    let pending_minute = input.now.timestamp().div_euclid(60);
    if cost_per_impression > 0 && !input.dry_run {
        li.counters.add_pending(pending_minute, cost_per_impression);
        li.campaign_counters.add_pending(pending_minute, cost_per_impression);
        li.counters.lease.consume(pending_minute, cost_per_impression);
        li.campaign_counters.lease.consume(pending_minute, cost_per_impression);
    }
    Ok(Win {
        line_item: winner.li,
        creative,
        price_micros: price,
        bid_micros: winner.ecpm,
        cost_per_impression,
        pending_minute,
        deal: None,
    })
}

fn tier(p: Priority) -> u8 {
    match p {
        Priority::Sponsorship => 0,
        Priority::Standard => 1,
        Priority::House => 2,
    }
}

/// Picks a creative of `li` that fits `p`, by the line item's rotation.
fn rotate(snap: &Snapshot, li: &LineItemRt, p: &PlacementRt, rng: &mut SmallRng) -> Option<u32> {
    let fitting = || li.creatives.iter().filter(|(c, _)| creative_fits(&snap.creatives[*c as usize], p));
    match li.rotation {
        Rotation::Even => {
            let n = fitting().count();
            (n > 0).then(|| rng.random_range(0..n)).and_then(|k| fitting().nth(k)).map(|(c, _)| *c)
        }
        Rotation::Weighted => {
            let total: u64 = fitting().map(|(_, w)| u64::from(*w)).sum();
            if total == 0 {
                return None;
            }
            let mut x = rng.random_range(0..total);
            for (c, w) in fitting() {
                if x < u64::from(*w) {
                    return Some(*c);
                }
                x -= u64::from(*w);
            }
            None
        }
        Rotation::OptimiseCtr => {
            // Explore one time in ten, else exploit the best CTR estimate.
            if rng.random_range(0..10u32) == 0 {
                let n = fitting().count();
                return (n > 0).then(|| rng.random_range(0..n)).and_then(|k| fitting().nth(k)).map(|(c, _)| *c);
            }
            fitting()
                .map(|(c, _)| {
                    let cc = &snap.creatives[*c as usize].counters;
                    let ctr = (cc.clicks.load(Ordering::Relaxed) as f64 + PRIOR_CLICKS)
                        / (cc.impressions.load(Ordering::Relaxed) as f64 + PRIOR_IMPRESSIONS);
                    (*c, ctr)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(c, _)| c)
        }
    }
}
