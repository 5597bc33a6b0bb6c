//! bidder: OpenRTB 2.6 bidding on the same engine as direct serving. A bid request becomes
//! engine attributes plus one slot per imp (a known placement by `tagid`, else one described
//! by the imp's formats, sizes and floor); RTB-enabled line items bid at their own eCPM; the
//! answer is a `BidResponse` whose notice URLs (`nurl`, `burl`, `lurl`) are signed, expiring
//! and replay-safe like the tracking URLs. Spend is booked from the billing notice (or the win
//! notice, per config) at the clearing price the exchange reports — never at the bid price.
//!
//! Bid price: the line item's eCPM (CPM: its rate; CPC: rate × estimated CTR × 1000) in the
//! platform currency, converted to the bid currency. The same for first price (`at` = 1) and
//! second price (`at` = 2): in a second-price auction bidding one's value is the best
//! strategy, and in a first-price one it is the most the advertiser agreed to pay — bid
//! shading is out of scope.

use crate::error::ApiError;
use crate::markup;
use crate::serving::{parse_user_agent_cached, Serving};
use crate::tracking::{TrackKind, TrackedAd, TrackedFields};
use adp_domain::events::{EventKind, EventRef};
use adp_domain::targeting::DeviceType;
use adp_domain::{CreativeContent, Format, FrequencyStore, Micros, VideoPlacement, VideoSettings};
use adp_engine::pipeline::{decide, DealOffer, DecideInput, NoFill, SlotChannel, SlotRequest, Win};
use adp_engine::request::{Attributes, Slot};
use adp_engine::snapshot::{user_key, CreativeRt, PlacementRt, Snapshot};
use adp_openrtb::price::{micros_to_price, parse_price_micros_any};
use adp_openrtb::{Bid, BidRequest, BidResponse, FxTable, Imp, LossReason, MarkupType, NoBidReason, SeatBid};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Which notice books the spend of a won impression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillOn {
    /// The billing notice (`burl`, OpenRTB 2.6: fired when the impression is billable).
    Billing,
    /// The win notice (`nurl`), for exchanges that send no billing notice.
    Win,
}

/// Settings of the bidder.
#[derive(Clone, Debug)]
pub struct RtbSettings {
    /// Our seat id in responses; requests whose `wseat` leaves it out (or `bseat` names it)
    /// get no bid.
    pub seat: String,
    /// The platform currency, in which budgets and rates are kept.
    pub currency: String,
    /// Static exchange rates for bidding in other currencies and for foreign floors.
    pub fx: FxTable,
    pub bill_on: BillOn,
    /// No bid: HTTP 204 (false) or 200 with a `BidResponse` carrying `nbr` (true).
    pub no_bid_with_nbr: bool,
    /// Time kept back from `tmax` for the network; decisions that would end later are no-bids.
    pub network_allowance_ms: u64,
    /// Most bids per imp (from different line items), best first.
    pub max_bids_per_imp: usize,
    /// Leave `adm` out of bids; the win notice answers with the markup instead.
    pub adm_in_win_notice: bool,
}

impl Default for RtbSettings {
    fn default() -> Self {
        RtbSettings {
            seat: "adplatform".into(),
            currency: "USD".into(),
            fx: FxTable::default(),
            bill_on: BillOn::Billing,
            no_bid_with_nbr: false,
            network_allowance_ms: 20,
            max_bids_per_imp: 1,
            adm_in_win_notice: false,
        }
    }
}

/// Why a request gets no bid: the OpenRTB code and our own reason.
#[derive(Debug, Clone)]
pub struct NoBid {
    pub nbr: NoBidReason,
    pub reason: &'static str,
    /// Per imp id: why it got no bid.
    pub imps: Vec<(String, &'static str)>,
}

impl NoBid {
    fn all(nbr: NoBidReason, reason: &'static str) -> NoBid {
        NoBid { nbr, reason, imps: Vec::new() }
    }

    /// The `BidResponse` of a no-bid (for the 200-with-nbr mode).
    pub fn response(&self, request_id: &str) -> BidResponse {
        let mut r = BidResponse::no_bid(request_id, self.nbr);
        let imps: serde_json::Map<String, Value> =
            self.imps.iter().map(|(id, why)| (id.clone(), Value::from(*why))).collect();
        r.ext = Some(json!({"adplatform": {"reason": self.reason, "imps": imps}}));
        r
    }
}

fn mtype(format: Format) -> MarkupType {
    match format {
        Format::Banner => MarkupType(1),
        Format::Video => MarkupType(2),
        Format::Native => MarkupType(4),
    }
}

fn device_type(code: i32) -> Option<DeviceType> {
    // AdCOM device types: 1 mobile/tablet, 2 PC, 3 connected TV, 4 phone, 5 tablet,
    // 6 connected device, 7 set-top box, 8 out of home.
    Some(match code {
        4 | 1 => DeviceType::Phone,
        2 => DeviceType::Desktop,
        3 => DeviceType::ConnectedTv,
        5 => DeviceType::Tablet,
        6 => DeviceType::ConnectedDevice,
        7 => DeviceType::SetTopBox,
        8 => DeviceType::Ooh,
        _ => return None,
    })
}

/// OpenRTB `geo.country` is ISO 3166-1 alpha-3; targeting speaks alpha-2.
fn country_alpha2(code: &str) -> Option<String> {
    let code = code.trim();
    match code.len() {
        2 => Some(code.to_ascii_uppercase()),
        3 => {
            // A binary search of the alpha-3-sorted table, without allocating (the crate's
            // caseless lookup uppercases into a new String, then scans).
            let upper: [u8; 3] = std::array::from_fn(|i| code.as_bytes()[i].to_ascii_uppercase());
            let codes = isocountry::CountryCode::as_array_alpha3();
            let at = codes.binary_search_by(|c| c.alpha3().as_bytes().cmp(&upper[..])).ok()?;
            Some(codes[at].alpha2().to_string())
        }
        _ => None,
    }
}

/// Whether the request lets us use personal data (user ids, segments): not under COPPA, and
/// under GDPR only with a consent string.
fn personal_data_allowed(req: &BidRequest) -> bool {
    let regs = req.regs.as_ref();
    if regs.and_then(|r| r.coppa) == Some(1) {
        return false;
    }
    if regs.and_then(|r| r.gdpr) == Some(1) {
        return req.user.as_ref().and_then(|u| u.consent.as_deref()).is_some_and(|c| !c.is_empty());
    }
    true
}

fn attributes(req: &BidRequest) -> Attributes {
    let mut a = Attributes::default();
    if let Some(d) = &req.device {
        if let Some(ua) = d.ua.as_deref().filter(|ua| ua.len() <= 2048) {
            let parsed = parse_user_agent_cached(ua);
            a.device_type = parsed.device_type;
            a.os = parsed.os;
            a.browser = parsed.browser;
            a.crawler = parsed.crawler;
        }
        if let Some(t) = d.devicetype.and_then(|t| device_type(t.0)) {
            // "Mobile/tablet" is vaguer than what the User-Agent says.
            if !(t == DeviceType::Phone && d.devicetype.map(|x| x.0) == Some(1) && a.device_type.is_some()) {
                a.device_type = Some(t);
            }
        }
        if let Some(os) = d.os.as_deref() {
            let os = os.trim().to_ascii_lowercase();
            a.os = Some(match os.as_str() {
                "ios" | "ipados" => "ios".into(),
                "mac os" | "macos" | "os x" => "macos".into(),
                _ => os,
            });
        }
        a.language = d.language.as_deref().map(|l| l.split(['-', '_']).next().unwrap_or(l).to_ascii_lowercase());
        a.ip = d.ip.as_deref().or(d.ipv6.as_deref()).and_then(|ip| ip.parse().ok());
        if let Some(g) = &d.geo {
            a.country = g.country.as_deref().and_then(country_alpha2);
            a.region = g.region.as_deref().map(str::to_string);
            a.city = g.city.as_deref().map(str::to_string);
            a.metro = g.metro.as_deref().map(str::to_string);
        }
    }
    if a.country.is_none() {
        if let Some(g) = req.user.as_ref().and_then(|u| u.geo.as_ref()) {
            a.country = g.country.as_deref().and_then(country_alpha2);
        }
    }
    if let Some(site) = &req.site {
        a.domain = site
            .domain
            .as_deref()
            .map(|d| d.trim().trim_start_matches("www.").to_ascii_lowercase())
            .or_else(|| site.page.as_deref().and_then(crate::serving::page_domain));
    }
    if let Some(app) = &req.app {
        a.app_bundle = app.bundle.as_deref().map(str::to_string);
    }
    if personal_data_allowed(req) {
        if let Some(u) = &req.user {
            for d in u.data.iter().take(64) {
                a.segments.extend(d.segment.iter().take(256).filter_map(|s| s.id.as_deref().map(str::to_string)));
            }
            // Users known to an identity provider, e.g. `eid:id5-sync.com`.
            a.segments.extend(u.eids.iter().take(32).filter_map(|e| e.source.as_deref().map(|s| format!("eid:{s}"))));
        }
    }
    a
}

pub(crate) fn user_of(req: &BidRequest) -> Option<u64> {
    if !personal_data_allowed(req) {
        return None;
    }
    let u = req.user.as_ref()?;
    u.buyeruid.as_deref().or(u.id.as_deref()).filter(|id| !id.is_empty() && id.len() <= 256).map(user_key)
}

/// Converts an OpenRTB price (CPM in `currency` units) into platform micros.
fn floor_micros(fx: &FxTable, platform: &str, price: Option<f64>, currency: Option<&str>) -> Result<Micros, ()> {
    let Some(price) = price.filter(|p| *p > 0.0) else { return Ok(0) };
    let micros = adp_openrtb::price::price_to_micros(price).ok_or(())?;
    fx.convert_micros(micros, currency.unwrap_or("USD"), platform).ok_or(())
}

/// The slot an imp asks to fill, or why it cannot be filled at all.
fn slot_for(
    settings: &RtbSettings,
    snap: &Snapshot,
    req: &BidRequest,
    imp: &Imp,
) -> Result<(PlacementRt, SlotChannel), &'static str> {
    let cur = settings.currency.as_str();
    let floor = floor_micros(&settings.fx, cur, imp.bidfloor, imp.bidfloorcur.as_deref())
        .map_err(|()| "floor_currency_unsupported")?;
    let mut sizes: Vec<(u32, u32)> = Vec::new();
    let mut formats = Vec::new();
    if let Some(b) = &imp.banner {
        formats.push(Format::Banner);
        for f in &b.format {
            if let (Some(w), Some(h)) = (f.w, f.h) {
                sizes.push((w.max(0) as u32, h.max(0) as u32));
            }
        }
        if let (Some(w), Some(h)) = (b.w, b.h) {
            sizes.push((w.max(0) as u32, h.max(0) as u32));
        }
        sizes.retain(|&(w, h)| w > 0 && h > 0);
        sizes.dedup();
    }
    let mut video = None;
    if let Some(v) = &imp.video {
        formats.push(Format::Video);
        let placement = match v.plcmt.map(|p| p.0) {
            Some(1) | None => VideoPlacement::Instream,
            Some(_) => VideoPlacement::Outstream,
        };
        video = Some(VideoSettings {
            placement,
            min_duration_secs: v.minduration.unwrap_or(0).max(0) as u32,
            max_duration_secs: v.maxduration.filter(|d| *d > 0).map_or(u32::MAX, |d| d as u32),
            mimes: v.mimes.iter().map(|m| m.to_string()).collect(),
        });
    }
    if imp.native.is_some() {
        formats.push(Format::Native);
    }
    if formats.is_empty() {
        return Err("unsupported_format");
    }
    let mut deals = Vec::new();
    let mut private_auction = false;
    if let Some(pmp) = &imp.pmp {
        private_auction = pmp.private_auction == Some(1);
        for d in pmp.deals.iter().take(64) {
            // A deal whose floor we cannot read is one we cannot honour: skip it.
            if let Ok(f) = floor_micros(&settings.fx, cur, d.bidfloor, d.bidfloorcur.as_deref()) {
                deals.push(DealOffer { id: d.id.to_string(), floor_micros: f });
            }
        }
    }
    let mut blocked_categories: Vec<String> = req.bcat.iter().take(512).map(|c| c.to_string()).collect();
    let mut blocked_adomains: Vec<String> =
        req.badv.iter().take(512).map(|d| d.trim().trim_start_matches("www.").to_ascii_lowercase()).collect();
    let known = imp.tagid.as_deref().and_then(|t| snap.placements.get(t));
    let placement = match known {
        // A tag id we know: its own sizes, formats and blocks, and the higher floor.
        Some(p) => {
            blocked_categories.extend(p.blocked_categories.iter().cloned());
            blocked_adomains.extend(p.blocked_adomains.iter().cloned());
            PlacementRt { floor_micros: p.floor_micros.max(floor), blocked_categories, blocked_adomains, ..p.clone() }
        }
        // The exchange's ids go into events and signed notice and click URLs: at most
        // `MAX_ID_CHARS` characters each, so that those stay within their size limits.
        None => PlacementRt {
            id: String::new(),
            site_id: first_chars(req.site.as_ref().and_then(|s| s.id.as_deref()).unwrap_or_default(), MAX_ID_CHARS)
                .to_string(),
            publisher_id: first_chars(
                req.site
                    .as_ref()
                    .and_then(|s| s.publisher.as_ref())
                    .or_else(|| req.app.as_ref().and_then(|a| a.publisher.as_ref()))
                    .and_then(|p| p.id.as_deref())
                    .unwrap_or_default(),
                MAX_ID_CHARS,
            )
            .to_string(),
            domain: None,
            bundle: None,
            size_keys: size_keys(&sizes),
            sizes,
            formats,
            floor_micros: floor,
            blocked_categories,
            blocked_adomains,
            auction_type: adp_domain::AuctionType::FirstPrice,
            allow_same_advertiser: false,
            video,
        },
    };
    Ok((placement, SlotChannel::Rtb { deals, private_auction }))
}

/// The targeting keys (`300x250`) of an imp's sizes, shared per serving thread: exchanges send a
/// few size lists over and over, and a key list costs a `format!` per size and an `Arc`.
fn size_keys(sizes: &[(u32, u32)]) -> std::sync::Arc<[String]> {
    type Cache = rustc_hash::FxHashMap<Vec<(u32, u32)>, std::sync::Arc<[String]>>;
    thread_local! {
        static KEYS: std::cell::RefCell<Cache> = std::cell::RefCell::default();
    }
    /// Distinct size lists kept per thread before the cache starts over, and the longest list
    /// kept (a request may list thousands of sizes: those are not worth keeping).
    const MAX_LISTS: usize = 1024;
    const MAX_SIZES: usize = 16;
    let make = || sizes.iter().map(|(w, h)| format!("{w}x{h}")).collect::<std::sync::Arc<[String]>>();
    if sizes.len() > MAX_SIZES {
        return make();
    }
    KEYS.with_borrow_mut(|cache| {
        if let Some(keys) = cache.get(sizes) {
            return std::sync::Arc::clone(keys);
        }
        let keys = make();
        if cache.len() >= MAX_LISTS {
            cache.clear();
        }
        cache.insert(sizes.to_vec(), std::sync::Arc::clone(&keys));
        keys
    })
}

fn no_fill_code(nf: NoFill) -> &'static str {
    nf.code()
}

impl Serving {
    /// Bids on an already validated (and 2.5-normalised) request. `deadline` is when the
    /// answer must be on its way; past it, the answer is a no-bid (nbr 15).
    pub fn bid(&self, req: &BidRequest, deadline: Option<Instant>) -> Result<BidResponse, NoBid> {
        self.bid_with(req, deadline, self.freq())
    }

    /// [`Serving::bid`] with `freq` as the frequency store (distributed mode: the user's
    /// counters loaded from the shared store).
    pub fn bid_with(
        &self,
        req: &BidRequest,
        deadline: Option<Instant>,
        freq: &dyn FrequencyStore,
    ) -> Result<BidResponse, NoBid> {
        let settings = &self.settings().rtb;
        self.stats.bid_requests.fetch_add(1, Ordering::Relaxed);
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(NoBid::all(NoBidReason::INSUFFICIENT_AUCTION_TIME, "tmax_exhausted"));
        }
        if (!req.wseat.is_empty() && !req.wseat.iter().any(|s| *s == settings.seat))
            || req.bseat.iter().any(|s| *s == settings.seat)
        {
            return Err(NoBid::all(NoBidReason::UNKNOWN_ERROR, "seat_not_allowed"));
        }
        let Some(currency) = settings.fx.pick_currency(&req.cur, &settings.currency).map(str::to_string) else {
            return Err(NoBid::all(NoBidReason::UNKNOWN_ERROR, "currency_not_supported"));
        };
        let mut attrs = attributes(req);
        self.locate(&mut attrs, None);
        if attrs.crawler {
            return Err(NoBid::all(NoBidReason::KNOWN_WEB_CRAWLER, "crawler"));
        }
        let test = req.test == Some(1);
        let snap = self.snapshot();
        let mut imps_why = Vec::new();
        let mut slots_owned = Vec::with_capacity(req.imp.len());
        for imp in &req.imp {
            match slot_for(settings, &snap, req, imp) {
                Ok(s) => slots_owned.push((imp, s)),
                Err(why) => imps_why.push((imp.id.to_string(), why)),
            }
        }
        let user = user_of(req);
        let now = Utc::now();
        let mut bids: Vec<Bid> = Vec::with_capacity(slots_owned.len());
        // Several bids per imp: decide again without the line items that already bid.
        let rounds = settings.max_bids_per_imp.max(1);
        let mut outcomes: Vec<Vec<Win>> = vec![Vec::new(); slots_owned.len()];
        let mut last_reason: Vec<Option<NoFill>> = vec![None; slots_owned.len()];
        for _ in 0..rounds {
            let slots: Vec<SlotRequest<'_>> = slots_owned
                .iter()
                .map(|(imp, (p, channel))| SlotRequest {
                    placement: Some(p),
                    slot: Slot {
                        placement_id: imp.tagid.as_deref().unwrap_or_default().to_string(),
                        sizes: p.size_keys.clone(),
                    },
                    channel: channel.clone(),
                })
                .collect();
            let input = DecideInput { attrs: &attrs, user_key: user, now, slots: &slots, dry_run: test };
            let round = self.with_scratch(|scratch, out| {
                decide(&snap, &input, freq, scratch, out);
                out.clone()
            });
            let mut any = false;
            for (i, outcome) in round.into_iter().enumerate() {
                match outcome {
                    Ok(w) if !outcomes[i].iter().any(|x| x.line_item == w.line_item) => {
                        outcomes[i].push(w);
                        any = true;
                    }
                    Ok(w) => self.release(&snap, &w),
                    Err(nf) => last_reason[i] = last_reason[i].or(Some(nf)),
                }
            }
            if !any {
                break;
            }
        }
        let late = deadline.is_some_and(|d| Instant::now() >= d);
        // Each imp's request event: the first bid event of the imp stands for it
        // (`EventRef::implied_request`); the imps without a bid get their own, in one hand-over.
        let request_id = first_chars(&req.id, MAX_ID_CHARS);
        let mut requests = Vec::new();
        for (i, ((imp, (placement, channel)), wins)) in slots_owned.iter().zip(outcomes).enumerate() {
            let no_fill = if wins.is_empty() {
                imps_why.push((imp.id.to_string(), last_reason[i].map_or("no_bid", no_fill_code)));
                last_reason[i]
            } else {
                None
            };
            let mut request_pending = !test;
            for win in wins {
                if late {
                    self.release(&snap, &win);
                    continue;
                }
                let stands_for_request = std::mem::take(&mut request_pending);
                let bid = self.make_bid(
                    &snap,
                    req,
                    imp,
                    placement,
                    channel,
                    &win,
                    &currency,
                    &attrs,
                    user,
                    now,
                    test,
                    stands_for_request,
                );
                match bid {
                    Some(b) => bids.push(b),
                    None => {
                        request_pending = stands_for_request;
                        self.release(&snap, &win);
                        imps_why.push((imp.id.to_string(), "no_fitting_creative"));
                    }
                }
            }
            if request_pending {
                requests.push(crate::serving::request_event_ref(
                    request_id,
                    Some(placement),
                    &attrs,
                    user,
                    now,
                    no_fill,
                ));
            }
        }
        if !requests.is_empty() && self.submit_events(&requests).is_err() {
            self.stats.events_rejected.fetch_add(requests.len() as u64, Ordering::Relaxed);
        }
        if late {
            self.stats.bid_timeouts.fetch_add(1, Ordering::Relaxed);
            return Err(NoBid::all(NoBidReason::INSUFFICIENT_AUCTION_TIME, "tmax_exhausted"));
        }
        if bids.is_empty() {
            let mut nb = NoBid::all(NoBidReason::UNKNOWN_ERROR, "no_bid");
            nb.imps = imps_why;
            return Err(nb);
        }
        self.stats.bids.fetch_add(bids.len() as u64, Ordering::Relaxed);
        Ok(BidResponse {
            id: req.id.to_string(),
            seatbid: vec![SeatBid { bid: bids, seat: Some(settings.seat.clone()), ..Default::default() }],
            // This thread's UUIDv7 sequence, written without the formatting machinery.
            bidid: Some(
                crate::ids::v7(now.timestamp_millis())
                    .simple()
                    .encode_lower(&mut uuid::Uuid::encode_buffer())
                    .to_string(),
            ),
            cur: Some(currency),
            ..Default::default()
        })
    }

    /// Gives back the pending spend a bid reserved that will not be made (or was lost).
    fn release(&self, snap: &Snapshot, win: &Win) {
        if win.cost_per_impression > 0 {
            let li = &snap.line_items[win.line_item as usize];
            li.counters.settle_pending(win.pending_minute, win.cost_per_impression);
            li.campaign_counters.settle_pending(win.pending_minute, win.cost_per_impression);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn make_bid(
        &self,
        snap: &Snapshot,
        req: &BidRequest,
        imp: &Imp,
        placement: &PlacementRt,
        channel: &SlotChannel,
        win: &Win,
        currency: &str,
        attrs: &Attributes,
        user: Option<u64>,
        now: DateTime<Utc>,
        test: bool,
        stands_for_request: bool,
    ) -> Option<Bid> {
        let settings = &self.settings().rtb;
        let li = &snap.line_items[win.line_item as usize];
        let cr = &snap.creatives[win.creative as usize];
        let price_in_cur = settings.fx.convert_micros(win.price_micros, &settings.currency, currency)?;
        let deal_id = match (win.deal, channel) {
            (Some(d), SlotChannel::Rtb { deals, .. }) => deals.get(usize::from(d)).map(|d| d.id.clone()),
            _ => None,
        };
        let (w, h) = if cr.format == Format::Banner {
            cr.sizes.iter().find(|s| placement.sizes.contains(s)).copied().or_else(|| cr.sizes.first().copied())?
        } else {
            cr.sizes.first().copied().unwrap_or((0, 0))
        };
        let decision_id = crate::tracking::decision_id(test, now.timestamp_millis());
        // The deal id as events and notice URLs carry it (the bid itself names it in full).
        let deal = first_chars(deal_id.as_deref().unwrap_or(""), MAX_ID_CHARS);
        let notices = TrackedFields {
            expires_at: now.timestamp() + self.settings().tracking_ttl_secs,
            request_id: first_chars(&req.id, MAX_ID_CHARS),
            decision_id: &decision_id,
            slot: 0,
            advertiser_id: &li.advertiser_id,
            campaign_id: &li.campaign_id,
            line_item_id: &li.id,
            creative_id: &cr.id,
            publisher_id: &placement.publisher_id,
            site_id: &placement.site_id,
            placement_id: &placement.id,
            user_key: user.unwrap_or(0),
            price_micros: price_in_cur,
            cost_micros: win.cost_per_impression,
            pending_minute: win.pending_minute,
            deal_id: deal,
            currency,
            landing_url: "",
        };
        let price = "&price=${AUCTION_PRICE}";
        let [nurl, burl, lurl] =
            self.notice_urls(&notices, [price, price, "&price=${AUCTION_PRICE}&loss=${AUCTION_LOSS}"]);
        let adm = if settings.adm_in_win_notice {
            None
        } else {
            let click = TrackedFields { landing_url: &cr.click_url, ..notices };
            Some(self.rtb_markup(cr, imp, &click, (w, h))?)
        };
        if !test {
            let event = EventRef {
                id: crate::serving::new_event_id(now.timestamp_millis()),
                kind: EventKind::Bid,
                event_time_ms: now.timestamp_millis(),
                receive_time_ms: now.timestamp_millis(),
                request_id: first_chars(&req.id, MAX_ID_CHARS),
                decision_id: &decision_id,
                advertiser_id: &li.advertiser_id,
                campaign_id: &li.campaign_id,
                line_item_id: &li.id,
                creative_id: &cr.id,
                publisher_id: &placement.publisher_id,
                site_id: &placement.site_id,
                placement_id: &placement.id,
                deal_id: (!deal.is_empty()).then_some(deal),
                user_key: user.unwrap_or(0),
                country: attrs.country.as_deref(),
                device_type: attrs.device_type,
                price_micros: win.price_micros,
                cost_micros: 0,
                currency: &settings.currency,
                reason: None,
                // The imp's request event is this one too (the first bid of the imp).
                stands_for_request,
            };
            if self.submit_event(&event).is_err() {
                self.stats.events_rejected.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut cat = Vec::with_capacity(li.categories.len() + cr.categories.len());
        cat.extend_from_slice(&li.categories);
        for c in &cr.categories {
            if !cat.contains(c) {
                cat.push(c.clone());
            }
        }
        Some(Bid {
            id: decision_id,
            impid: imp.id.to_string(),
            price: micros_to_price(price_in_cur),
            nurl: Some(nurl),
            burl: Some(burl),
            lurl: Some(lurl),
            adm,
            adid: Some(cr.id.clone()),
            adomain: li.adomains.clone(),
            cid: Some(li.campaign_id.clone()),
            crid: Some(cr.id.clone()),
            cat,
            dealid: deal_id,
            w: (w > 0).then_some(w as i32),
            h: (h > 0).then_some(h as i32),
            mtype: Some(mtype(cr.format)),
            ..Default::default()
        })
    }

    /// The markup of an RTB bid: the creative with our click tracker (`click`). No impression
    /// pixel: the exchange's billing notice is the impression.
    fn rtb_markup(&self, cr: &CreativeRt, imp: &Imp, click: &TrackedFields<'_>, (w, h): (u32, u32)) -> Option<String> {
        let (click_url, click_html) = self.click_url(click);
        match &cr.content {
            CreativeContent::Native { title, body, image_url, icon_url, cta, sponsored_by } => native_markup(
                imp,
                title,
                body.as_deref(),
                image_url,
                icon_url.as_deref(),
                cta.as_deref(),
                sponsored_by,
                &click_url,
            ),
            content => {
                let t = markup::Tracking { imp: "", click: &click_url, imp_html: "", click_html: &click_html };
                Some(markup::render(content, w, h, &t))
            }
        }
    }
}

/// An OpenRTB Native 1.2 response for the imp's native request: each asset it asks for filled
/// from the creative, or `None` if a required one cannot be.
#[allow(clippy::too_many_arguments)]
fn native_markup(
    imp: &Imp,
    title: &str,
    body: Option<&str>,
    image_url: &str,
    icon_url: Option<&str>,
    cta: Option<&str>,
    sponsored_by: &str,
    click_url: &str,
) -> Option<String> {
    let request: Value = serde_json::from_str(&imp.native.as_ref()?.request).ok()?;
    // Some exchanges wrap the request in {"native": {...}}.
    let request = request.get("native").cloned().unwrap_or(request);
    let mut assets = Vec::new();
    for a in request.get("assets").and_then(Value::as_array).into_iter().flatten().take(64) {
        let id = a.get("id").and_then(Value::as_i64)?;
        let required = a.get("required").and_then(Value::as_i64) == Some(1);
        let filled = if let Some(t) = a.get("title") {
            let len = t.get("len").and_then(Value::as_u64).unwrap_or(u64::MAX) as usize;
            Some(json!({"id": id, "title": {"text": title.chars().take(len).collect::<String>()}}))
        } else if let Some(img) = a.get("img") {
            // Image asset types: 1 icon, 3 main.
            match img.get("type").and_then(Value::as_i64) {
                Some(1) => icon_url.map(|u| json!({"id": id, "img": {"url": u}})),
                _ => Some(json!({"id": id, "img": {"url": image_url}})),
            }
        } else if let Some(d) = a.get("data") {
            // Data asset types: 1 sponsored by, 2 description, 12 call to action.
            let text = match d.get("type").and_then(Value::as_i64) {
                Some(1) => Some(sponsored_by),
                Some(2) => body,
                Some(12) => cta,
                _ => None,
            };
            text.map(|v| json!({"id": id, "data": {"value": v}}))
        } else {
            None
        };
        match filled {
            Some(f) => assets.push(f),
            None if required => return None,
            None => {}
        }
    }
    Some(json!({"ver": "1.2", "assets": assets, "link": {"url": click_url}}).to_string())
}

/// The outcome of a notice, for the HTTP layer.
pub enum NoticeOutcome {
    /// Counted (or a test decision's notice): 204, or 200 with markup for a win notice in the
    /// adm-in-win-notice mode.
    Done(Option<String>),
}

/// What a counted notice did to the budget: for the shared ledger in distributed mode.
#[derive(Debug, Clone)]
pub struct NoticeBooking {
    pub ad: TrackedAd,
    /// Spend booked (the clearing price per impression), micros.
    pub cost: Micros,
    /// The bid's reservation this notice ended, micros.
    pub settled: Micros,
    /// The notice used up a frequency cap (a won impression of a capped line item).
    pub counts_cap: bool,
}

impl Serving {
    /// Counts a win, billing or loss notice exactly once. `price` is the exchange's
    /// `${AUCTION_PRICE}` (CPM in the bid currency), `loss` its `${AUCTION_LOSS}`.
    pub fn notice(
        &self,
        kind: TrackKind,
        p: &str,
        s: &str,
        price: Option<&str>,
        loss: Option<&str>,
    ) -> Result<NoticeOutcome, ApiError> {
        self.notice_booked(kind, p, s, price, loss).map(|(outcome, _)| outcome)
    }

    /// [`Serving::notice`], also saying what it booked (`None` for a test decision's notice).
    pub fn notice_booked(
        &self,
        kind: TrackKind,
        p: &str,
        s: &str,
        price: Option<&str>,
        loss: Option<&str>,
    ) -> Result<(NoticeOutcome, Option<NoticeBooking>), ApiError> {
        let settings = &self.settings().rtb;
        let now = Utc::now();
        let Some((ad, key)) = self.verify_and_guard(kind, p, s, now)? else {
            return Ok((NoticeOutcome::Done(None), None));
        };
        let books =
            matches!((kind, settings.bill_on), (TrackKind::Billing, BillOn::Billing) | (TrackKind::Win, BillOn::Win));
        // The clearing price, in the bid currency, then in ours. A win or billing notice
        // without it cannot be booked: the caller gets a 400 and may retry with it.
        let clearing = match price.map(str::trim).filter(|p| !p.is_empty() && !p.starts_with("${")) {
            Some(v) => match parse_price_micros_any(v) {
                Ok(m) => Some(m),
                Err(e) => {
                    self.forget(key);
                    return Err(ApiError::bad_request("invalid_price", "price", e.to_string()));
                }
            },
            None if books => {
                self.forget(key);
                return Err(ApiError::bad_request(
                    "missing_field",
                    "price",
                    "the notice lacks the clearing price (${AUCTION_PRICE} was not substituted)",
                ));
            }
            None => None,
        };
        let cur = if ad.currency.is_empty() { settings.currency.as_str() } else { ad.currency.as_str() };
        // An exchange cannot clear above the bid; if it says so, book the bid (and say why).
        // (A loss notice's price is the winner's, above our bid by nature: not capped.)
        let (clearing_cur, capped) = match clearing {
            Some(c) if c > ad.price_micros && kind != TrackKind::Loss => (Some(ad.price_micros), true),
            c => (c, false),
        };
        let clearing_platform = match clearing_cur {
            Some(c) => Some(settings.fx.convert_micros(c, cur, &settings.currency).ok_or_else(|| {
                self.forget(key);
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "currency_not_supported",
                    "no rate for the bid currency",
                )
                .with_field("price")
            })?),
            None => None,
        };
        let cost = if books { clearing_platform.map_or(0, |c| c / 1000) } else { 0 };
        let loss_code = loss.and_then(|l| l.trim().parse::<i32>().ok()).map(LossReason);
        let reason =
            if capped { Some("price_above_bid".to_string()) } else { loss_code.map(|c| format!("loss_{}", c.0)) };
        let event_kind = match kind {
            TrackKind::Win => EventKind::Win,
            TrackKind::Billing => EventKind::Billing,
            _ => EventKind::Loss,
        };
        let event = EventRef {
            deal_id: (!ad.deal_id.is_empty()).then_some(&*ad.deal_id),
            price_micros: clearing_platform.unwrap_or(0),
            cost_micros: cost,
            currency: &settings.currency,
            reason: reason.as_deref(),
            ..ad.event(event_kind, now.timestamp_millis(), now.timestamp_millis())
        };
        if self.submit_event(&event).is_err() {
            // Billable: never dropped. Refuse, forget the URL, let the exchange retry.
            self.forget(key);
            self.stats.events_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "event_queue_full", "try again later"));
        }
        let (li, campaign, tz) = self.counters_for(&ad);
        let mut counts_cap = false;
        match kind {
            TrackKind::Win => self.stats.wins.fetch_add(1, Ordering::Relaxed),
            TrackKind::Billing => self.stats.billed.fetch_add(1, Ordering::Relaxed),
            _ => self.stats.losses.fetch_add(1, Ordering::Relaxed),
        };
        if books || kind == TrackKind::Loss {
            // The bid's reservation ends: booked at the clearing price, or given back.
            li.settle_pending(ad.pending_minute, ad.cost_micros);
            campaign.settle_pending(ad.pending_minute, ad.cost_micros);
        }
        if books {
            let day = i64::from(chrono::Datelike::num_days_from_ce(&now.with_timezone(&tz).date_naive()));
            if cost > 0 {
                li.book(day, cost);
                campaign.book(day, cost);
            }
            li.impressions.fetch_add(1, Ordering::Relaxed);
            self.registry().creative(&ad.creative_id).impressions.fetch_add(1, Ordering::Relaxed);
            // A won impression uses up the user's frequency cap (bids only checked it).
            if ad.user_key != 0 {
                let snap = self.snapshot();
                if let Some(li_rt) = snap.line_item_by_id.get(&ad.line_item_id).map(|i| &snap.line_items[*i as usize]) {
                    if !li_rt.caps.is_empty() {
                        counts_cap = true;
                        let _ = self.freq().try_count(ad.user_key, &li_rt.caps, now.timestamp());
                    }
                }
            }
        }
        let settled = if books || kind == TrackKind::Loss { ad.cost_micros } else { 0 };
        let markup =
            if kind == TrackKind::Win && settings.adm_in_win_notice { self.win_markup(&ad, now) } else { None };
        let booking = NoticeBooking { ad, cost: if books { cost } else { 0 }, settled, counts_cap };
        Ok((NoticeOutcome::Done(markup), Some(booking)))
    }

    /// The markup of a won bid whose `adm` was left out (adm-in-win-notice mode).
    fn win_markup(&self, ad: &TrackedAd, now: DateTime<Utc>) -> Option<String> {
        let snap = self.snapshot();
        let cr = snap.creatives.iter().find(|c| c.id == ad.creative_id)?;
        let click = TrackedFields {
            expires_at: now.timestamp() + self.settings().tracking_ttl_secs,
            landing_url: &cr.click_url,
            ..ad.fields()
        };
        let (click_url, click_html) = self.click_url(&click);
        let (w, h) = cr.sizes.first().copied().unwrap_or((0, 0));
        let t = markup::Tracking { imp: "", click: &click_url, imp_html: "", click_html: &click_html };
        Some(markup::render(&cr.content, w, h, &t))
    }
}

/// The deadline of a request that arrived at `arrived` with `tmax` ms, keeping `allowance`
/// ms for the network. No `tmax`: no deadline.
pub fn deadline(arrived: Instant, tmax: Option<i64>, allowance_ms: u64) -> Option<Instant> {
    let tmax = u64::try_from(tmax?).ok()?;
    Some(arrived + Duration::from_millis(tmax.saturating_sub(allowance_ms)))
}

/// Characters kept of an id an exchange sends (request, site, publisher, deal) where it goes
/// into events and signed URLs.
const MAX_ID_CHARS: usize = 128;

/// The first `n` characters of `s`.
fn first_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::{country_alpha2, size_keys};

    #[test]
    fn size_keys_are_the_sizes_in_order_and_shared_per_list() {
        let a = size_keys(&[(300, 250), (728, 90)]);
        assert_eq!(&a[..], ["300x250".to_string(), "728x90".to_string()]);
        assert!(std::sync::Arc::ptr_eq(&a, &size_keys(&[(300, 250), (728, 90)])), "the same list is shared");
        assert_eq!(&size_keys(&[(728, 90), (300, 250)])[..], ["728x90".to_string(), "300x250".to_string()]);
        assert!(size_keys(&[]).is_empty());
        let long: Vec<(u32, u32)> = (1..=40).map(|w| (w, w)).collect();
        assert_eq!(size_keys(&long).len(), 40);
        // Past the cap the cache starts over and still answers right.
        for w in 0..1100 {
            assert_eq!(&size_keys(&[(w, 1)])[..], [format!("{w}x1")]);
        }
    }

    #[test]
    fn country_codes_of_two_or_three_letters_in_any_case_become_alpha2() {
        for (given, want) in [("DEU", Some("DE")), ("usa", Some("US")), (" gbr ", Some("GB")), ("Fr", Some("FR"))] {
            assert_eq!(country_alpha2(given).as_deref(), want, "{given:?}");
        }
        // Every alpha-3 code maps to its own alpha-2 (the table is searched, not scanned).
        for c in isocountry::CountryCode::as_array() {
            assert_eq!(country_alpha2(c.alpha3()).as_deref(), Some(c.alpha2()));
            assert_eq!(country_alpha2(&c.alpha3().to_ascii_lowercase()).as_deref(), Some(c.alpha2()));
        }
        for bad in ["XXX", "ZZZ", "", "D", "DEUT", "é1"] {
            assert_eq!(country_alpha2(bad), None, "{bad:?}");
        }
    }
}
