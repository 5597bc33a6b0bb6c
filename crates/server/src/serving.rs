//! serving: the hot path — `POST /v1/decide` (and a GET variant for simple tags), the
//! impression and click trackers — plus the background work that keeps it fed: rebuilding the
//! catalog snapshot on every change and adjusting pacing throttles. Request handlers read an
//! immutable snapshot through an atomic pointer, keep their scratch space per thread, and hand
//! events to a bounded queue; they never take a global lock or wait on I/O.

use crate::conversions::Touch;
use crate::error::ApiError;
use crate::json_out;
use crate::markup;
use crate::tracking::{ReplayError, ReplayGuard, TrackError, TrackKind, TrackedAd, TrackedFields, UrlSigner};
use adp_domain::events::{EventKind, EventRef, IdRef};
use adp_domain::targeting::DeviceType;
use adp_domain::{CatalogChange, CatalogStore, EventSink, Format, FrequencyStore, GeoLookup, Micros, Pacing, Pricing};
use adp_engine::delivery::{CounterRegistry, LineItemCounters};
use adp_engine::pacing::{EvenPacer, PacingConfig, SpendCurve};
use adp_engine::pipeline::{budget_day, decide, DecideInput, EngineScratch, NoFill, SlotRequest, Win};
use adp_engine::request::{Attributes, Slot};
use adp_engine::snapshot::{user_key, LineItemRt, PlacementRt, Snapshot};
use adp_events::rollup::DeliveryRollup;
use arc_swap::ArcSwap;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use utoipa::ToSchema;

/// Settings of the serving role.
#[derive(Clone, Debug)]
pub struct ServingSettings {
    /// Base URL that tracking URLs start with, e.g. `https://ads.example.com`.
    pub public_url: String,
    /// Seconds a tracking URL stays valid; at most the pending window of the budget counters.
    pub tracking_ttl_secs: i64,
    pub max_placements: usize,
    /// Seconds between full catalog reloads by version (changes arrive on the feed sooner).
    pub catalog_reload_secs: u64,
    pub pacing: PacingConfig,
    /// Counted tracking URLs remembered until they expire (sustains this / ttl events per second).
    pub replay_guard_entries: usize,
    pub rtb: crate::bidder::RtbSettings,
    pub attribution: crate::conversions::AttributionSettings,
    pub geo: GeoSettings,
}

/// Where a decide request's address for the geo lookup may come from when its body has none.
#[derive(Clone, Debug, Default)]
pub struct GeoSettings {
    /// Look up the TCP peer's address (the client calling `/v1/decide` directly).
    pub use_client_addr: bool,
    /// With `use_client_addr`: the first `X-Forwarded-For` entry instead (behind a proxy).
    pub trust_forwarded_for: bool,
}

impl Default for ServingSettings {
    fn default() -> Self {
        ServingSettings {
            public_url: "http://127.0.0.1:8080".into(),
            tracking_ttl_secs: 900,
            max_placements: 16,
            catalog_reload_secs: 30,
            pacing: PacingConfig::default(),
            replay_guard_entries: 4_000_000,
            rtb: crate::bidder::RtbSettings::default(),
            attribution: crate::conversions::AttributionSettings::default(),
            geo: GeoSettings::default(),
        }
    }
}

/// Counters of the serving role, for metrics and tests.
#[derive(Debug, Default)]
pub struct ServingStats {
    /// Batches of decide and bid requests answered together (`server.batch_requests`): the
    /// requests of both kinds divided by this is about the mean batch size (refused bodies go
    /// through batches too without counting as requests).
    pub batches: AtomicU64,
    pub requests: AtomicU64,
    pub filled: AtomicU64,
    pub unfilled: AtomicU64,
    pub impressions: AtomicU64,
    pub clicks: AtomicU64,
    pub tracking_rejected: AtomicU64,
    pub events_rejected: AtomicU64,
    pub bid_requests: AtomicU64,
    pub bids: AtomicU64,
    pub bid_timeouts: AtomicU64,
    pub wins: AtomicU64,
    pub billed: AtomicU64,
    pub losses: AtomicU64,
    pub conversions: AtomicU64,
}

pub struct Serving {
    snapshot: ArcSwap<Snapshot>,
    registry: Arc<CounterRegistry>,
    freq: Arc<dyn FrequencyStore>,
    events: Arc<dyn EventSink>,
    rollup: Arc<DeliveryRollup>,
    signer: UrlSigner,
    replay: ReplayGuard,
    attribution: crate::conversions::Attribution,
    settings: ServingSettings,
    pub stats: ServingStats,
    /// Distributed mode: caps, budgets, replay guards and CTR shared through DragonflyDB.
    shared: std::sync::OnceLock<Arc<crate::distributed::Shared>>,
    /// Geo from IP, for requests that name no country.
    geo: Option<Arc<dyn GeoLookup>>,
    /// `settings.public_url`, HTML-escaped (tracking URLs inside markup).
    public_url_html: String,
    /// `public_url` and `public_url_html` as the inside of a JSON string.
    public_url_json: String,
    public_url_html_json: String,
}

/// Longest a snapshot's CTR-based ranking is served before it is rebuilt.
const RERANK_MS: i64 = 60_000;

thread_local! {
    static SCRATCH: RefCell<(EngineScratch, Vec<Result<Win, NoFill>>)> = RefCell::new((EngineScratch::default(), Vec::new()));
}

/// The request event of a placement (or an RTB imp): it was asked for, the denominator of fill
/// rate.
pub(crate) fn request_event_ref<'a>(
    request_id: &'a str,
    placement: Option<&'a PlacementRt>,
    attrs: &'a Attributes,
    user: Option<u64>,
    now: DateTime<Utc>,
    no_fill: Option<NoFill>,
) -> EventRef<'a> {
    let (publisher_id, site_id, placement_id) =
        placement.map_or(("", "", ""), |p| (&*p.publisher_id, &*p.site_id, &*p.id));
    EventRef {
        id: new_event_id(now.timestamp_millis()),
        kind: EventKind::Request,
        event_time_ms: now.timestamp_millis(),
        receive_time_ms: now.timestamp_millis(),
        request_id,
        publisher_id,
        site_id,
        placement_id,
        user_key: user.unwrap_or(0),
        country: attrs.country.as_deref(),
        device_type: attrs.device_type,
        reason: no_fill.map(|nf| nf.code()),
        ..EventRef::default()
    }
}

/// A new event id for an event at `now_ms`: a UUIDv7, in the 16-byte form records carry.
pub(crate) fn new_event_id(now_ms: i64) -> IdRef<'static> {
    IdRef::Uuid(crate::ids::v7(now_ms).into_bytes())
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Serving {
    /// A serving state whose events go to a local event log in `events_dir` (default settings,
    /// feeding the embedded rollup), with frequency counters in process: what the tests and the
    /// bid bench set up on a catalog of their own.
    pub fn with_local_log(
        settings: ServingSettings,
        signer: UrlSigner,
        events_dir: &std::path::Path,
    ) -> Result<Serving, adp_events::LogError> {
        let rollup = Arc::new(DeliveryRollup::new());
        let events = adp_events::LocalLog::open(
            events_dir,
            adp_events::LogConfig::default(),
            Arc::clone(&rollup) as Arc<dyn adp_events::EventObserver>,
        )?;
        Ok(Serving::new(
            settings,
            signer,
            Arc::new(adp_store::frequency::InProcessFrequency::new(100_000, 8)),
            Arc::new(events),
            rollup,
        ))
    }

    pub fn new(
        settings: ServingSettings,
        signer: UrlSigner,
        freq: Arc<dyn FrequencyStore>,
        events: Arc<dyn EventSink>,
        rollup: Arc<DeliveryRollup>,
    ) -> Serving {
        Serving {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            registry: Arc::new(CounterRegistry::default()),
            freq,
            events,
            rollup,
            signer,
            replay: ReplayGuard::new(settings.replay_guard_entries, 64),
            attribution: crate::conversions::Attribution::new(settings.attribution.clone()),
            public_url_html: markup::html_escape(&settings.public_url),
            public_url_json: json_out::escaped(&settings.public_url),
            public_url_html_json: json_out::escaped(&markup::html_escape(&settings.public_url)),
            settings,
            stats: ServingStats::default(),
            shared: std::sync::OnceLock::new(),
            geo: None,
        }
    }

    /// Looks up where requests without a country come from, by their IP address.
    pub fn with_geo(mut self, geo: Arc<dyn GeoLookup>) -> Serving {
        self.geo = Some(geo);
        self
    }

    /// Fills country, region and city from the geo lookup of `ip` (else `attrs.ip`) when the
    /// request named no country: an explicit country always wins, and so do an explicit region
    /// and city.
    pub(crate) fn locate(&self, attrs: &mut Attributes, ip: Option<std::net::IpAddr>) {
        if attrs.country.is_some() {
            return;
        }
        let (Some(geo), Some(ip)) = (&self.geo, attrs.ip.or(ip)) else { return };
        if let Some(found) = geo.lookup(ip) {
            attrs.country = Some(found.country);
            if attrs.region.is_none() {
                attrs.region = found.region;
            }
            if attrs.city.is_none() {
                attrs.city = found.city;
            }
        }
    }

    /// Shares caps, budgets, replay guards and CTR with other processes from now on (once).
    /// Budgets are leased from then on: nothing is spent before the first grant.
    pub fn set_shared(&self, shared: Arc<crate::distributed::Shared>) -> bool {
        self.registry.require_leases();
        self.shared.set(shared).is_ok()
    }

    pub fn shared(&self) -> Option<&Arc<crate::distributed::Shared>> {
        self.shared.get()
    }

    /// The served snapshot, owned (for work that outlives a guard or crosses an await).
    pub fn snapshot_arc(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Waits until every event this thread submitted so far is written to the log (billable
    /// trackers answer only then, so `kill -9` loses nothing acknowledged).
    pub async fn await_written(&self) {
        if let Some(marker) = self.events.written_marker() {
            let _ = marker.await;
        }
    }

    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// Serves `snap` from now on (tests, benchmarks and fuzzing build snapshots directly).
    pub fn swap_snapshot(&self, snap: Snapshot) {
        self.snapshot.store(Arc::new(snap));
    }

    pub fn rollup(&self) -> &DeliveryRollup {
        &self.rollup
    }

    pub fn event_stats(&self) -> adp_domain::SinkStats {
        self.events.stats()
    }

    /// Loads the catalog and swaps in a new snapshot if it is newer than the one served.
    pub async fn refresh(&self, store: &dyn CatalogStore) -> Result<u64, adp_domain::StoreError> {
        let (version, records) = store.snapshot().await?;
        let current = self.snapshot.load();
        // Rebuild on a new catalog version, and at least every RERANK_MS so that ranks built
        // from live click-through rates (CPC line items) stay fresh.
        let stale = Utc::now().timestamp_millis() - current.built_at_ms > RERANK_MS;
        if version <= current.version && version != 0 && !stale {
            return Ok(current.version);
        }
        drop(current);
        let registry = Arc::clone(&self.registry);
        let built = tokio::task::spawn_blocking(move || Snapshot::build(version, &records, &registry))
            .await
            .map_err(|e| adp_domain::StoreError::Unavailable(format!("snapshot build failed: {e}")))?;
        let stats = built.index.stats();
        self.snapshot.store(Arc::new(built));
        tracing::info!(
            version,
            line_items = stats.items,
            conjunctions = stats.conjunctions,
            "catalog snapshot swapped in"
        );
        Ok(version)
    }

    pub(crate) fn settings(&self) -> &ServingSettings {
        &self.settings
    }

    pub(crate) fn attribution(&self) -> &crate::conversions::Attribution {
        &self.attribution
    }

    pub(crate) fn freq(&self) -> &dyn FrequencyStore {
        self.freq.as_ref()
    }

    pub(crate) fn registry(&self) -> &CounterRegistry {
        &self.registry
    }

    /// Hands a borrowed event to the sink, which encodes it on this thread (no owned copy).
    pub(crate) fn submit_event(&self, event: &EventRef<'_>) -> Result<(), adp_domain::SinkError> {
        self.events.submit_ref(event)
    }

    /// Hands one request's borrowed events to the sink together (all or none).
    pub(crate) fn submit_events(&self, events: &[EventRef<'_>]) -> Result<(), adp_domain::SinkError> {
        self.events.submit_refs(events)
    }

    /// Runs `f` with this thread's engine scratch space.
    pub(crate) fn with_scratch<R>(&self, f: impl FnOnce(&mut EngineScratch, &mut Vec<Result<Win, NoFill>>) -> R) -> R {
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (scratch, out) = &mut *guard;
            f(scratch, out)
        })
    }

    /// `{public_url}/v1/{path}?`, in a string with room for `more` bytes after it.
    fn url_head(&self, path: &str, more: usize) -> String {
        let base = &self.settings.public_url;
        let mut url = String::with_capacity(base.len() + path.len() + 5 + more);
        url.push_str(base);
        url.push_str("/v1/");
        url.push_str(path);
        url.push('?');
        url
    }

    /// The win, billing and loss notice URLs of a bid (one shared signed payload), each
    /// followed by its `tails` entry (the macros the exchange fills in), each written into a
    /// buffer of its final size.
    pub(crate) fn notice_urls(&self, ad: &TrackedFields<'_>, tails: [&str; 3]) -> [String; 3] {
        let (p, sigs) = self.signer.sign_notices(ad);
        let kinds = [TrackKind::Win, TrackKind::Billing, TrackKind::Loss];
        std::array::from_fn(|i| {
            let mut url = self.url_head(kinds[i].path(), p.len() + 5 + sigs[i].len() + tails[i].len());
            url.push_str("p=");
            url.push_str(&p);
            url.push_str("&s=");
            url.push_str(&sigs[i]);
            url.push_str(tails[i]);
            url
        })
    }

    /// A click URL on its own (an RTB bid's markup, which has no impression pixel: the
    /// exchange's billing notice is the impression), plain and HTML-escaped. Signed as a v5
    /// tracker pair whose impression half is not handed out.
    /// The click costs nothing and has no price: the exchange bills the impression.
    pub(crate) fn click_url(&self, ad: &TrackedFields<'_>) -> (String, String) {
        let ad = TrackedFields { price_micros: 0, cost_micros: 0, ..*ad };
        let mut payload = String::with_capacity(420 + ad.landing_url.len() * 4 / 3);
        let [_, click_sig] = self.signer.sign_trackers(&ad, 0, &mut payload);
        self.tracker_url(TrackKind::Click, &payload, &click_sig)
    }

    /// The impression and click tracking URLs of an ad, each plain and HTML-escaped (for
    /// markup), from their shared signed payload.
    fn tracker_urls(&self, ad: &AdParts<'_>) -> [(String, String); 2] {
        let [imp_sig, click_sig] = &ad.sigs;
        [
            self.tracker_url(TrackKind::Impression, &ad.payload, imp_sig),
            self.tracker_url(TrackKind::Click, &ad.payload, click_sig),
        ]
    }

    /// One tracker URL, plain and HTML-escaped, from its payload and signature.
    fn tracker_url(&self, kind: TrackKind, p: &str, sig: &str) -> (String, String) {
        let escaped_base = &self.public_url_html;
        let mut url = self.url_head(kind.path(), p.len() + sig.len() + 5);
        url.push_str("p=");
        url.push_str(p);
        let amp = url.len();
        url.push_str("&s=");
        url.push_str(sig);
        // Payload and signature are base64url and the base URL was validated as a URL without
        // quotes or angle brackets, so `&` is the only character to escape.
        let base = self.settings.public_url.len();
        let mut html = String::with_capacity(url.len() + escaped_base.len() - base + 4);
        html.push_str(escaped_base);
        html.push_str(&url[base..amp]);
        html.push_str("&amp;");
        html.push_str(&url[amp + 1..]);
        (url, html)
    }
}

/// Rebuilds the snapshot on every catalog change (coalescing bursts) and on a timer.
pub async fn follow_catalog(
    serving: Arc<Serving>,
    store: Arc<dyn CatalogStore>,
    mut changes: broadcast::Receiver<CatalogChange>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(serving.settings.catalog_reload_secs.max(1)));
    loop {
        tokio::select! {
            r = changes.recv() => match r {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Let a burst of writes settle into one rebuild.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    while changes.try_recv().is_ok() {}
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {}
        }
        if let Err(e) = serving.refresh(store.as_ref()).await {
            tracing::warn!(error = %e, "catalog snapshot refresh failed; serving the previous one");
        }
    }
}

/// Adjusts each evenly paced line item's throttle every `update_interval_secs`.
pub async fn run_pacing(serving: Arc<Serving>) {
    let interval = Duration::from_secs(u64::from(serving.settings.pacing.update_interval_secs.max(1)));
    let mut tick = tokio::time::interval(interval);
    let mut pacers: HashMap<String, (Micros, EvenPacer)> = HashMap::new();
    loop {
        tick.tick().await;
        let snap = serving.snapshot.load_full();
        let now = Utc::now();
        for li in snap.line_items.iter().filter(|li| li.pacing == Pacing::Even) {
            let Some(daily) = daily_target(li, now) else {
                li.counters.throttle.set(1.0);
                continue;
            };
            let entry = pacers.entry(li.id.clone()).or_insert_with(|| {
                (daily, EvenPacer::new(daily, li.time_zone, SpendCurve::uniform(), serving.settings.pacing))
            });
            if entry.0 != daily {
                *entry = (daily, EvenPacer::new(daily, li.time_zone, SpendCurve::uniform(), serving.settings.pacing));
            }
            entry.1.update(now, li.counters.spent_on(budget_day(li, now)));
            li.counters.throttle.set(entry.1.throttle());
        }
    }
}

/// The budget to pace today: the daily budget, or what is left of the lifetime budget spread
/// over the days left in the flight.
fn daily_target(li: &LineItemRt, now: DateTime<Utc>) -> Option<Micros> {
    let from_lifetime = match (li.lifetime_budget, li.end) {
        (Some(total), Some(end)) if end > now => {
            let spent_before_today = li.counters.spent_lifetime() - li.counters.spent_on(budget_day(li, now));
            let days_left = ((end - now).num_seconds() as f64 / 86_400.0).ceil().max(1.0) as i64;
            Some(((total - spent_before_today).max(0)) / days_left)
        }
        _ => None,
    };
    match (li.daily_budget, from_lifetime) {
        (Some(d), Some(l)) => Some(d.min(l)),
        (d, l) => d.or(l),
    }
}

// ---------------------------------------------------------------------------------------------
// restart recovery

/// Watches the event log's replay at start so that a restart forgets nothing that decides
/// money: the replay guard gets back the impressions and clicks still within their URLs'
/// lifetime, and (through the rollups) budgets get back their spend. Forwards every event to
/// the delivery rollup.
pub struct RestartRecovery {
    rollup: Arc<DeliveryRollup>,
    /// Clicks and impressions replayed, for conversion attribution.
    touches: std::sync::Mutex<Vec<(bool, Touch)>>,
    /// (advertiser, order id) of replayed conversions: each still counts once.
    orders: std::sync::Mutex<Vec<(String, String)>>,
    replaying: std::sync::atomic::AtomicBool,
    counted: std::sync::Mutex<Vec<(u128, i64)>>,
    ttl_ms: i64,
    started_ms: i64,
}

impl RestartRecovery {
    pub fn new(rollup: Arc<DeliveryRollup>, tracking_ttl_secs: i64) -> RestartRecovery {
        RestartRecovery {
            rollup,
            touches: std::sync::Mutex::new(Vec::new()),
            orders: std::sync::Mutex::new(Vec::new()),
            replaying: std::sync::atomic::AtomicBool::new(true),
            counted: std::sync::Mutex::new(Vec::new()),
            ttl_ms: tracking_ttl_secs * 1000,
            started_ms: now_ms(),
        }
    }

    /// The replay is over: later events are live and booked as they are counted.
    pub fn replay_done(&self) {
        self.replaying.store(false, Ordering::Release);
    }
}

impl adp_events::EventObserver for RestartRecovery {
    fn observe(&self, event: &EventRef<'_>) {
        self.observe_all(std::slice::from_ref(event));
    }

    fn observe_all(&self, events: &[EventRef<'_>]) {
        self.rollup.apply_all(events);
        if !self.replaying.load(Ordering::Acquire) {
            return;
        }
        for event in events {
            self.recover(event);
        }
    }
}

impl RestartRecovery {
    /// What a replayed event restores besides the rollups.
    fn recover(&self, event: &EventRef<'_>) {
        if event.kind == EventKind::Conversion {
            if let Ok(mut v) = self.orders.lock() {
                v.push((event.advertiser_id.to_owned(), event.request_id.to_owned()));
            }
            return;
        }
        if event.decision_id.is_empty() {
            return;
        }
        if matches!(event.kind, EventKind::Click | EventKind::Impression) {
            if let Ok(mut v) = self.touches.lock() {
                v.push((event.kind == EventKind::Click, Touch::from_event(event)));
            }
        }
        let kind = match event.kind {
            EventKind::Impression => TrackKind::Impression,
            EventKind::Click => TrackKind::Click,
            EventKind::Win => TrackKind::Win,
            EventKind::Billing => TrackKind::Billing,
            EventKind::Loss => TrackKind::Loss,
            EventKind::Decision | EventKind::Bid | EventKind::Request | EventKind::Conversion => return,
        };
        // A URL lives at most ttl after its decision, which came before this event.
        let expires_ms = event.event_time_ms + self.ttl_ms;
        if expires_ms > self.started_ms {
            if let Ok(mut v) = self.counted.lock() {
                v.push((ReplayGuard::key_of(kind, event.decision_id), expires_ms / 1000));
            }
        }
    }
}

impl Serving {
    /// Restores spend, delivery counts and the replay guard from the replayed event log.
    /// Call after the first snapshot is in place (budget days need the line items' zones).
    pub fn restore(&self, recovery: &RestartRecovery) {
        let snap = self.snapshot.load();
        let now = Utc::now();
        let rows = recovery.rollup.query(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        let (mut spend, mut lines) = (0i64, std::collections::HashSet::new());
        for row in &rows {
            let li_rt = snap.line_item_by_id.get(&row.line_item_id).map(|i| &snap.line_items[*i as usize]);
            let counters = self.registry.line_item(&row.line_item_id);
            counters.impressions.fetch_add(row.impressions, Ordering::Relaxed);
            counters.clicks.fetch_add(row.clicks, Ordering::Relaxed);
            if row.spend_micros == 0 {
                continue;
            }
            let tz = li_rt.map_or_else(|| self.registry.time_zone(&row.line_item_id), |li| li.time_zone);
            let local_day =
                |t: DateTime<Utc>| i64::from(chrono::Datelike::num_days_from_ce(&t.with_timezone(&tz).date_naive()));
            let today = local_day(now);
            let campaign = li_rt.map(|li| self.registry.campaign(&li.campaign_id));
            if local_day(row.hour) == today {
                counters.book(today, row.spend_micros);
                if let Some(c) = &campaign {
                    c.book(today, row.spend_micros);
                }
            } else {
                counters.book_earlier_day(row.spend_micros);
                if let Some(c) = &campaign {
                    c.book_earlier_day(row.spend_micros);
                }
            }
            spend += row.spend_micros;
            lines.insert(row.line_item_id.clone());
        }
        let touches = recovery.touches.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
        let now_ms = now.timestamp_millis();
        for (click, t) in touches {
            if click {
                self.attribution.record_click(t, now_ms);
            } else {
                self.attribution.record_view(t, now_ms);
            }
        }
        for (adv, order) in recovery.orders.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default() {
            self.attribution.claim_order(&adv, &order);
        }
        let keys = recovery.counted.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
        let now_secs = now.timestamp();
        for (key, expires) in &keys {
            let _ = self.replay.insert(*key, *expires, now_secs);
        }
        tracing::info!(
            line_items = lines.len(),
            spend_micros = spend,
            replay_keys = keys.len(),
            "delivery state restored from the event log"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// decide

#[derive(Deserialize, Debug, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    #[serde(default)]
    pub id: Option<String>,
    pub placements: Vec<PlacementReq>,
    #[serde(default)]
    pub user: Option<UserReq>,
    #[serde(default)]
    pub page: Option<PageReq>,
    #[serde(default)]
    pub app: Option<AppReq>,
    #[serde(default)]
    pub device: Option<DeviceReq>,
    #[serde(default)]
    pub geo: Option<GeoReq>,
    #[serde(default)]
    pub key_values: BTreeMap<String, KvValue>,
    #[serde(default)]
    pub deals: Vec<String>,
    #[serde(default)]
    pub test: bool,
    /// The client's address from the connection (or a trusted `X-Forwarded-For`), when
    /// `geo.use_client_addr` is on; used only for the geo lookup, never read from the body.
    #[serde(skip)]
    pub client_ip: Option<std::net::IpAddr>,
}

#[derive(Deserialize, Debug, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementReq {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub sizes: Vec<String>,
    #[serde(default)]
    pub formats: Vec<Format>,
    #[serde(default)]
    pub floor_micros: Option<Micros>,
}

#[derive(Deserialize, Debug, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserReq {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub segments: Vec<String>,
}

#[derive(Deserialize, Debug, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageReq {
    pub url: String,
    #[serde(default)]
    pub referrer: Option<String>,
}

#[derive(Deserialize, Debug, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppReq {
    pub bundle: String,
}

#[derive(Deserialize, Debug, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceReq {
    #[serde(default, rename = "type")]
    pub device_type: Option<DeviceType>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub browser: Option<String>,
    #[serde(default)]
    pub ua: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Deserialize, Debug, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoReq {
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub metro: Option<String>,
}

#[derive(Deserialize, Debug, ToSchema)]
#[serde(untagged)]
pub enum KvValue {
    One(String),
    Many(Vec<String>),
}

/// Where `finish` puts the answer: the API's owned structs, or JSON bytes.
enum Answer<'a> {
    Owned(&'a mut DecideResponse),
    Json(&'a mut Vec<u8>),
}

/// An ad the engine picked, signed and counted, before it is written out.
pub(crate) struct AdParts<'s> {
    pub line_item: &'s LineItemRt,
    pub creative: &'s adp_engine::snapshot::CreativeRt,
    pub price_micros: Micros,
    pub width: u32,
    pub height: u32,
    /// The trackers' shared signed payload and the impression's and the click's signatures.
    pub payload: String,
    pub sigs: [crate::tracking::Sig; 2],
    pub decision_id: String,
}

impl AdParts<'_> {
    /// The decision event of this ad, in `slot` of request `request_id`.
    fn decision_event<'a>(
        &'a self,
        request_id: &'a str,
        slot: &SlotRequest<'a>,
        attrs: &'a Attributes,
        user: Option<u64>,
        now: DateTime<Utc>,
    ) -> EventRef<'a> {
        let (li, cr) = (self.line_item, self.creative);
        let (publisher_id, site_id, placement_id) =
            slot.placement.map_or(("", "", ""), |p| (&*p.publisher_id, &*p.site_id, &*p.id));
        EventRef {
            id: new_event_id(now.timestamp_millis()),
            kind: EventKind::Decision,
            event_time_ms: now.timestamp_millis(),
            receive_time_ms: now.timestamp_millis(),
            request_id,
            decision_id: &self.decision_id,
            advertiser_id: &li.advertiser_id,
            campaign_id: &li.campaign_id,
            line_item_id: &li.id,
            creative_id: &cr.id,
            publisher_id,
            site_id,
            placement_id,
            deal_id: None,
            user_key: user.unwrap_or(0),
            country: attrs.country.as_deref(),
            device_type: attrs.device_type,
            price_micros: self.price_micros,
            cost_micros: 0,
            currency: "USD",
            reason: None,
            // The placement's request event is this one too: one record per filled placement.
            stands_for_request: true,
        }
    }
}

#[derive(Serialize, Debug, ToSchema)]
pub struct DecideResponse {
    pub request_id: String,
    pub decisions: Vec<PlacementDecision>,
}

#[derive(Serialize, Debug, ToSchema)]
pub struct PlacementDecision {
    pub placement_id: Option<String>,
    pub ad: Option<AdResponse>,
    /// Why the placement was not filled, e.g. `frequency_capped`; null when it was.
    #[schema(value_type = Option<String>)]
    pub no_fill_reason: Option<&'static str>,
}

#[derive(Serialize, Debug, ToSchema)]
pub struct AdResponse {
    pub line_item_id: String,
    pub creative_id: String,
    pub campaign_id: String,
    pub advertiser_id: String,
    pub adomain: Vec<String>,
    pub format: Format,
    pub price_micros: Micros,
    pub markup: String,
    pub width: u32,
    pub height: u32,
    pub impression_url: String,
    pub click_url: String,
}

const MAX_ID: usize = 256;
const MAX_LIST: usize = 256;

fn bad(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message).with_field(field)
}

fn bounded(s: &str, field: &str) -> Result<(), ApiError> {
    if s.len() > MAX_ID {
        return Err(bad("too_long", field, format!("at most {MAX_ID} bytes")));
    }
    Ok(())
}

/// Parses a decide request body, naming the field at fault.
///
/// sonic-rs parses first (about twice as fast here; see `decide_parse_agrees_with_serde_json`
/// for why its answer can be trusted); a body it refuses, or nested too deep for it to take
/// safely, goes to `serde_json`, whose error names the field.
pub fn parse_decide(body: &[u8]) -> Result<DecideRequest, ApiError> {
    if adp_openrtb::sonic_safe(body) {
        if let Ok(req) = sonic_rs::from_slice::<DecideRequest>(body) {
            return Ok(req);
        }
    }
    parse_json_body(body)
}

/// Parses a JSON request body into `T`: malformed JSON → 400 `malformed_json`; a field of the
/// wrong type, missing or unknown → the field error naming its path.
///
/// A good body is parsed once, without path tracking; only a refused one is parsed again,
/// with `serde_path_to_error`, to name the field at fault.
pub fn parse_json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if let Ok(req) = serde_json::from_slice(body) {
        return Ok(req);
    }
    let malformed = |e: serde_json::Error| {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {e}"))
    };
    let de = &mut serde_json::Deserializer::from_slice(body);
    let req: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            malformed(inner)
        } else {
            let path = if path == "." { String::new() } else { path };
            adp_domain::FieldError::from_serde(path, &inner).into()
        }
    })?;
    // What the first parse refused but a path-tracked one accepts: trailing characters.
    de.end().map_err(malformed)?;
    Ok(req)
}

/// Host of a page URL, lower case, without `www.`.
pub(crate) fn page_domain(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next()?.rsplit('@').next()?;
    let host = host.split(':').next()?.trim_end_matches('.').to_ascii_lowercase();
    let host = host.strip_prefix("www.").map(str::to_string).unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// What a User-Agent string says about the device.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UserAgentInfo {
    pub device_type: Option<DeviceType>,
    pub os: Option<String>,
    pub browser: Option<String>,
    pub crawler: bool,
}

/// Distinct User-Agents remembered per serving thread; real traffic repeats a few thousand.
const UA_CACHE_ENTRIES: usize = 4096;

thread_local! {
    static UA_CACHE: RefCell<HashMap<Box<str>, UserAgentInfo>> = RefCell::new(HashMap::new());
}

/// [`parse_user_agent`] through a per-thread cache (emptied when it fills up).
pub fn parse_user_agent_cached(ua: &str) -> UserAgentInfo {
    UA_CACHE.with(|cell| {
        let mut cache = cell.borrow_mut();
        if let Some(hit) = cache.get(ua) {
            return hit.clone();
        }
        let parsed = parse_user_agent(ua);
        if cache.len() >= UA_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(ua.into(), parsed.clone());
        parsed
    })
}

/// Reads a User-Agent with woothee: device type, OS and browser as targeting names them.
pub fn parse_user_agent(ua: &str) -> UserAgentInfo {
    static PARSER: std::sync::OnceLock<woothee::parser::Parser> = std::sync::OnceLock::new();
    let Some(r) = PARSER.get_or_init(woothee::parser::Parser::new).parse(ua) else { return UserAgentInfo::default() };
    let os = r.os.to_ascii_lowercase();
    let device_type = match (r.category, os.as_str()) {
        (_, "ipad") => Some(DeviceType::Tablet),
        ("pc", _) => Some(DeviceType::Desktop),
        ("smartphone" | "mobilephone", _) => Some(DeviceType::Phone),
        ("appliance", _) => Some(DeviceType::ConnectedDevice),
        _ => None,
    };
    let os = match os.as_str() {
        "iphone" | "ipad" | "ipod" | "ios" => Some("ios".to_string()),
        "mac osx" | "mac os classic" => Some("macos".to_string()),
        "android" => Some("android".to_string()),
        "linux" => Some("linux".to_string()),
        "chromeos" => Some("chromeos".to_string()),
        o if o.starts_with("windows") => Some("windows".to_string()),
        "unknown" | "" => None,
        o => Some(o.to_string()),
    };
    let browser = match r.name.to_ascii_lowercase().as_str() {
        "internet explorer" => Some("ie".to_string()),
        "unknown" | "" => None,
        b => Some(b.to_string()),
    };
    UserAgentInfo { device_type, os, browser, crawler: r.category == "crawler" }
}

/// Validates a request and turns it into engine attributes.
fn attributes(req: &DecideRequest) -> Result<Attributes, ApiError> {
    let mut a = Attributes::default();
    if let Some(g) = &req.geo {
        if let Some(c) = &g.country {
            let c = c.trim().to_ascii_uppercase();
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad("invalid_value", "geo.country", "an ISO 3166-1 alpha-2 code, e.g. US"));
            }
            a.country = Some(c);
        }
        for (v, f) in [(&g.region, "geo.region"), (&g.city, "geo.city"), (&g.metro, "geo.metro")] {
            if let Some(v) = v {
                bounded(v, f)?;
            }
        }
        a.region = g.region.clone();
        a.city = g.city.clone();
        a.metro = g.metro.clone();
    }
    if let Some(d) = &req.device {
        a.device_type = d.device_type;
        for (v, f) in [(&d.os, "device.os"), (&d.browser, "device.browser"), (&d.language, "device.language")] {
            if let Some(v) = v {
                bounded(v, f)?;
            }
        }
        a.os = d.os.as_deref().map(str::to_ascii_lowercase);
        a.browser = d.browser.as_deref().map(str::to_ascii_lowercase);
        if let Some(ua) = &d.ua {
            if ua.len() > 2048 {
                return Err(bad("too_long", "device.ua", "at most 2048 bytes"));
            }
            // Explicit fields win over what the User-Agent says.
            let parsed = parse_user_agent_cached(ua);
            a.device_type = a.device_type.or(parsed.device_type);
            a.os = a.os.take().or(parsed.os);
            a.browser = a.browser.take().or(parsed.browser);
            a.crawler = parsed.crawler;
        }
        a.language = d.language.as_deref().map(|l| l.split(['-', '_']).next().unwrap_or(l).to_ascii_lowercase());
        if let Some(ip) = &d.ip {
            a.ip = Some(ip.parse().map_err(|_| bad("invalid_value", "device.ip", "not an IPv4 or IPv6 address"))?);
        }
    }
    match (&req.page, &req.app) {
        (Some(_), Some(_)) => {
            return Err(bad("invalid_value", "app", "a request comes from a page or an app, not both"))
        }
        (Some(p), None) => {
            if p.url.len() > 4096 {
                return Err(bad("too_long", "page.url", "at most 4096 bytes"));
            }
            a.domain = page_domain(&p.url);
        }
        (None, Some(app)) => {
            bounded(&app.bundle, "app.bundle")?;
            a.app_bundle = Some(app.bundle.clone());
        }
        (None, None) => {}
    }
    if let Some(u) = &req.user {
        if u.segments.len() > MAX_LIST {
            return Err(bad("too_many", "user.segments", format!("at most {MAX_LIST} segments")));
        }
        a.segments = u.segments.clone();
    }
    if req.key_values.len() > MAX_LIST {
        return Err(bad("too_many", "key_values", format!("at most {MAX_LIST} keys")));
    }
    for (k, v) in &req.key_values {
        match v {
            KvValue::One(s) => a.key_values.push((k.clone(), s.clone())),
            KvValue::Many(list) => a.key_values.extend(list.iter().map(|s| (k.clone(), s.clone()))),
        }
    }
    if req.deals.len() > MAX_LIST {
        return Err(bad("too_many", "deals", format!("at most {MAX_LIST} deals")));
    }
    a.deals = req.deals.clone();
    Ok(a)
}

fn adhoc_placement(i: usize, p: &PlacementReq) -> Result<PlacementRt, ApiError> {
    let field = format!("placements[{i}]");
    if p.sizes.is_empty() && p.formats.is_empty() {
        return Err(bad("missing_field", format!("{field}.id"), "give a placement id, or sizes and formats"));
    }
    let mut sizes = Vec::new();
    for (j, s) in p.sizes.iter().enumerate() {
        sizes.push(adp_domain::targeting::parse_size(s).ok_or_else(|| {
            bad("invalid_value", format!("{field}.sizes[{j}]"), "a size is WIDTHxHEIGHT, e.g. 300x250")
        })?);
    }
    let formats = if p.formats.is_empty() { vec![Format::Banner] } else { p.formats.clone() };
    Ok(PlacementRt {
        id: String::new(),
        site_id: String::new(),
        publisher_id: String::new(),
        domain: None,
        bundle: None,
        size_keys: sizes.iter().map(|(w, h)| format!("{w}x{h}")).collect(),
        sizes,
        formats,
        floor_micros: p.floor_micros.unwrap_or(0),
        blocked_categories: vec![],
        blocked_adomains: vec![],
        auction_type: adp_domain::AuctionType::SecondPrice,
        allow_same_advertiser: false,
        video: None,
    })
}

/// A decide request after the engine ran, before its ads are rendered and counted: the
/// distributed path confirms the winners' frequency caps with the shared store in between.
pub struct Decided {
    request_id: String,
    attrs: Attributes,
    snap: Arc<Snapshot>,
    owned: Vec<Option<PlacementRt>>,
    outcomes: Vec<Result<Win, NoFill>>,
    user: Option<u64>,
    now: DateTime<Utc>,
    /// Answered without running the engine (crawlers).
    early: Option<DecideResponse>,
}

impl Decided {
    pub fn user(&self) -> Option<u64> {
        self.user
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The winners whose line items have frequency caps, in slot order: the order in which the
    /// engine counted them (`FrequencyStore::try_count`).
    pub fn capped_winners(&self) -> Vec<usize> {
        self.outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                let w = o.as_ref().ok()?;
                (!self.snap.line_items[w.line_item as usize].caps.is_empty()).then_some(i)
            })
            .collect()
    }

    /// Turns slot `i`'s win into a frequency-capped no-fill (another process counted the
    /// user's last allowed impression first), giving back its budget reservation.
    pub fn revoke(&mut self, i: usize) {
        let Some(Ok(win)) = self.outcomes.get(i) else { return };
        let li = &self.snap.line_items[win.line_item as usize];
        if win.cost_per_impression > 0 {
            li.counters.settle_pending(win.pending_minute, win.cost_per_impression);
            li.campaign_counters.settle_pending(win.pending_minute, win.cost_per_impression);
        }
        self.outcomes[i] = Err(NoFill::FrequencyCapped);
    }
}

fn slot_requests<'a>(
    req: &'a DecideRequest,
    owned: &'a [Option<PlacementRt>],
    snap: &'a Snapshot,
) -> Vec<SlotRequest<'a>> {
    req.placements
        .iter()
        .zip(owned)
        .map(|(p, own)| {
            let placement = own.as_ref().or_else(|| p.id.as_deref().and_then(|id| snap.placements.get(id)));
            let slot = Slot {
                placement_id: p.id.clone().unwrap_or_default(),
                sizes: placement.map(|pl| pl.size_keys.clone()).unwrap_or_default(),
            };
            SlotRequest { placement, slot, channel: Default::default() }
        })
        .collect()
}

impl Serving {
    /// Runs one decision request end to end.
    pub fn decide(&self, req: &DecideRequest) -> Result<DecideResponse, ApiError> {
        let decided = self.decide_engine(req, self.freq.as_ref())?;
        Ok(self.decide_finish(req, decided))
    }

    /// Validates a request and runs the engine with `freq` as the frequency store.
    pub fn decide_engine(&self, req: &DecideRequest, freq: &dyn FrequencyStore) -> Result<Decided, ApiError> {
        let mut decided = self.decide_prepare(req)?;
        self.decide_run(req, &mut decided, freq);
        Ok(decided)
    }

    /// The frequency cap rules the engine may check for this request (distributed mode loads
    /// their counters before [`Serving::decide_run`]).
    pub fn cap_rules_in_play(&self, req: &DecideRequest, decided: &Decided) -> Vec<adp_domain::CapRule> {
        if decided.early.is_some() {
            return Vec::new();
        }
        let slots = slot_requests(req, &decided.owned, &decided.snap);
        let input = DecideInput {
            attrs: &decided.attrs,
            user_key: decided.user,
            now: decided.now,
            slots: &slots,
            dry_run: true,
        };
        let mut rules = Vec::new();
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            adp_engine::pipeline::cap_rules_in_play(&decided.snap, &input, &mut guard.0, &mut rules);
        });
        rules
    }

    /// Runs the engine on a prepared request.
    pub fn decide_run(&self, req: &DecideRequest, decided: &mut Decided, freq: &dyn FrequencyStore) {
        if decided.early.is_some() {
            return;
        }
        let slots = slot_requests(req, &decided.owned, &decided.snap);
        let input = DecideInput {
            attrs: &decided.attrs,
            user_key: decided.user,
            now: decided.now,
            slots: &slots,
            dry_run: req.test,
        };
        let outcomes = SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (scratch, out) = &mut *guard;
            decide(&decided.snap, &input, freq, scratch, out);
            out.clone()
        });
        drop(slots);
        decided.outcomes = outcomes;
    }

    /// Validates a request: the engine has not run yet.
    pub fn decide_prepare(&self, req: &DecideRequest) -> Result<Decided, ApiError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if req.placements.is_empty() || req.placements.len() > self.settings.max_placements {
            return Err(bad(
                "invalid_value",
                "placements",
                format!("1 to {} placements", self.settings.max_placements),
            ));
        }
        for (i, p) in req.placements.iter().enumerate() {
            if let Some(f) = p.floor_micros.filter(|f| *f < 0 || *f > 1_000_000_000_000) {
                return Err(bad(
                    "invalid_value",
                    format!("placements[{i}].floor_micros"),
                    format!("{f} is not a sensible floor"),
                ));
            }
            if let Some(id) = p.id.as_ref().filter(|id| id.len() > MAX_ID) {
                bounded(id, &format!("placements[{i}].id"))?;
            }
        }
        let now = Utc::now();
        let request_id = match &req.id {
            Some(id) if adp_domain::validate_id(id, "id").is_ok() => id.clone(),
            Some(_) => return Err(bad("invalid_id", "id", "a request id is 1 to 128 letters, digits or -_.:")),
            None => crate::ids::v7(now.timestamp_millis())
                .simple()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .to_owned(),
        };
        if let Some(uid) = req.user.as_ref().and_then(|u| u.id.as_deref()) {
            bounded(uid, "user.id")?;
        }
        let mut attrs = attributes(req)?;
        self.locate(&mut attrs, req.client_ip);
        let snap = self.snapshot.load_full();
        let user = req.user.as_ref().and_then(|u| u.id.as_deref()).map(user_key);
        if attrs.crawler {
            // Known crawlers see no ads: no spend, no events, no invalid traffic billed.
            self.stats.unfilled.fetch_add(req.placements.len() as u64, Ordering::Relaxed);
            let decisions = req
                .placements
                .iter()
                .map(|p| PlacementDecision { placement_id: p.id.clone(), ad: None, no_fill_reason: Some("crawler") })
                .collect();
            let early = Some(DecideResponse { request_id: request_id.clone(), decisions });
            return Ok(Decided { request_id, attrs, snap, owned: vec![], outcomes: vec![], user, now, early });
        }
        // Placements given by size and format, and known placements whose floor the request
        // raises, are served from per-request copies.
        let mut owned: Vec<Option<PlacementRt>> = Vec::with_capacity(req.placements.len());
        for (i, p) in req.placements.iter().enumerate() {
            owned.push(match &p.id {
                None => Some(adhoc_placement(i, p)?),
                Some(_) if !p.sizes.is_empty() || !p.formats.is_empty() => {
                    return Err(bad(
                        "invalid_value",
                        format!("placements[{i}].sizes"),
                        "sizes and formats describe placements without an id; a known placement has its own",
                    ))
                }
                Some(id) => match (p.floor_micros, snap.placements.get(id.as_str())) {
                    (Some(floor), Some(known)) if floor > known.floor_micros => {
                        Some(PlacementRt { floor_micros: floor, ..known.clone() })
                    }
                    _ => None,
                },
            });
        }
        Ok(Decided { request_id, attrs, snap, owned, outcomes: Vec::new(), user, now, early: None })
    }

    /// Renders the ads the engine picked, with their tracking URLs, and submits the events.
    pub fn decide_finish(&self, req: &DecideRequest, decided: Decided) -> DecideResponse {
        let mut resp = DecideResponse { request_id: String::new(), decisions: Vec::new() };
        self.finish(req, decided, &mut Answer::Owned(&mut resp));
        resp
    }

    /// Runs one decision request end to end, answered as JSON written straight from the parts
    /// of each ad: the bytes of `serde_json::to_vec(&self.decide(req)?)` (for the same ids and
    /// signatures), without the intermediate strings.
    pub fn decide_json(&self, req: &DecideRequest) -> Result<Vec<u8>, ApiError> {
        let decided = self.decide_engine(req, self.freq.as_ref())?;
        let mut out = Vec::with_capacity(4096);
        self.finish(req, decided, &mut Answer::Json(&mut out));
        Ok(out)
    }

    fn finish(&self, req: &DecideRequest, decided: Decided, answer: &mut Answer<'_>) {
        let Decided { request_id, attrs, snap, owned, outcomes, user, now, early } = decided;
        if let Some(resp) = early {
            match answer {
                Answer::Owned(r) => **r = resp,
                Answer::Json(out) => out.extend_from_slice(&resp.to_json()),
            }
            return;
        }
        let slots = slot_requests(req, &owned, &snap);
        let picked: Vec<Result<AdParts<'_>, NoFill>> = outcomes
            .into_iter()
            .zip(&slots)
            .enumerate()
            .map(|(i, (outcome, slot))| match outcome {
                Err(nf) => {
                    self.stats.unfilled.fetch_add(1, Ordering::Relaxed);
                    Err(nf)
                }
                Ok(win) => {
                    self.stats.filled.fetch_add(1, Ordering::Relaxed);
                    Ok(self.render(&snap, &request_id, i as u32, &win, slot, user, now, req.test))
                }
            })
            .collect();
        if !req.test {
            // One event per placement, all in one hand-over to the sink: the decision event of
            // a filled placement, which stands for its request event too
            // (`EventRef::implied_request`), or the request event with the no-fill reason.
            let mut events = Vec::with_capacity(picked.len());
            for (p, slot) in picked.iter().zip(&slots) {
                events.push(match p {
                    Ok(ad) => ad.decision_event(&request_id, slot, &attrs, user, now),
                    Err(nf) => request_event_ref(&request_id, slot.placement, &attrs, user, now, Some(*nf)),
                });
            }
            if self.events.submit_refs(&events).is_err() {
                // Requests and decisions are not billable: a full queue drops them, counted,
                // never silently.
                self.stats.events_rejected.fetch_add(events.len() as u64, Ordering::Relaxed);
            }
        }
        match answer {
            Answer::Owned(r) => r.decisions.reserve(picked.len()),
            Answer::Json(out) => json_out::open_answer(out, &request_id),
        }
        for (i, p) in picked.iter().enumerate() {
            let placement_id = req.placements[i].id.as_deref();
            let (ad, no_fill_reason) = match p {
                Ok(ad) => (Some(ad), None),
                Err(nf) => (None, Some(nf.code())),
            };
            match answer {
                Answer::Owned(r) => r.decisions.push(PlacementDecision {
                    placement_id: placement_id.map(str::to_owned),
                    ad: ad.map(|ad| self.ad_response(ad)),
                    no_fill_reason,
                }),
                Answer::Json(out) => {
                    json_out::open_decision(out, i, placement_id);
                    match ad {
                        Some(ad) => self.write_ad_json(ad, out),
                        None => out.extend_from_slice(b"null"),
                    }
                    json_out::close_decision(out, no_fill_reason);
                }
            }
        }
        match answer {
            Answer::Owned(r) => r.request_id = request_id,
            Answer::Json(out) => json_out::close_answer(out),
        }
    }

    /// An ad's answer, owned (the API's `AdResponse`).
    fn ad_response(&self, ad: &AdParts<'_>) -> AdResponse {
        let [(imp, imp_html), (click, click_html)] = self.tracker_urls(ad);
        let (li, cr) = (ad.line_item, ad.creative);
        AdResponse {
            line_item_id: li.id.clone(),
            creative_id: cr.id.clone(),
            campaign_id: li.campaign_id.clone(),
            advertiser_id: li.advertiser_id.clone(),
            adomain: li.adomains.clone(),
            format: cr.format,
            price_micros: ad.price_micros,
            markup: markup::render(
                &cr.content,
                ad.width,
                ad.height,
                &markup::Tracking { imp: &imp, click: &click, imp_html: &imp_html, click_html: &click_html },
            ),
            width: ad.width,
            height: ad.height,
            impression_url: imp,
            click_url: click,
        }
    }

    /// An ad's answer as JSON, written from its parts: what `ad_response` serialises to.
    fn write_ad_json(&self, ad: &AdParts<'_>, out: &mut Vec<u8>) {
        let (li, cr) = (ad.line_item, ad.creative);
        let urls = json_out::TrackerUrls {
            base: &self.public_url_json,
            base_html: &self.public_url_html_json,
            payload: &ad.payload,
            imp_sig: &ad.sigs[0],
            click_sig: &ad.sigs[1],
        };
        json_out::open_ad(out, li, cr, ad.price_micros);
        match &cr.content {
            adp_domain::CreativeContent::BannerImage { image_url, alt } => {
                json_out::banner_image_markup(out, &urls, image_url, alt.as_deref().unwrap_or(""), ad.width, ad.height);
            }
            other => {
                let [(imp, imp_html), (click, click_html)] = self.tracker_urls(ad);
                let t = markup::Tracking { imp: &imp, click: &click, imp_html: &imp_html, click_html: &click_html };
                json_out::put_str(out, &markup::render(other, ad.width, ad.height, &t));
            }
        }
        json_out::close_ad(out, &urls, ad.width, ad.height);
    }

    /// Signs the trackers of an ad the engine picked.
    #[allow(clippy::too_many_arguments)]
    fn render<'s>(
        &self,
        snap: &'s Snapshot,
        request_id: &str,
        slot_no: u32,
        win: &Win,
        slot: &SlotRequest<'_>,
        user: Option<u64>,
        now: DateTime<Utc>,
        test: bool,
    ) -> AdParts<'s> {
        let li = &snap.line_items[win.line_item as usize];
        let cr = &snap.creatives[win.creative as usize];
        let (publisher_id, site_id, placement_id) =
            slot.placement.map_or(("", "", ""), |p| (&*p.publisher_id, &*p.site_id, &*p.id));
        let (w, h) = slot
            .placement
            .and_then(|p| cr.sizes.iter().find(|s| p.sizes.contains(s)).copied())
            .or_else(|| cr.sizes.first().copied())
            .unwrap_or((0, 0));
        // Server-made and signed: the client cannot choose it, so it keys the replay guard and
        // marks test decisions (`t…`), whose trackers count nothing.
        let decision_id = crate::tracking::decision_id(test, now.timestamp_millis());
        // A CPC winner pays per click its rate scaled by the auction's discount (clearing / bid).
        let click_cost = match li.pricing {
            Pricing::Cpc if win.bid_micros > 0 => {
                (i128::from(li.rate_micros) * i128::from(win.price_micros) / i128::from(win.bid_micros)) as Micros
            }
            Pricing::Cpc => li.rate_micros,
            _ => 0,
        };
        let trackers = TrackedFields {
            expires_at: now.timestamp() + self.settings.tracking_ttl_secs,
            request_id,
            decision_id: &decision_id,
            slot: slot_no,
            advertiser_id: &li.advertiser_id,
            campaign_id: &li.campaign_id,
            line_item_id: &li.id,
            creative_id: &cr.id,
            publisher_id,
            site_id,
            placement_id,
            user_key: user.unwrap_or(0),
            price_micros: win.price_micros,
            // The impression's cost; the click's goes into the payload beside it.
            cost_micros: win.cost_per_impression,
            pending_minute: win.pending_minute,
            deal_id: "",
            currency: "",
            landing_url: &cr.click_url,
        };
        let mut payload = String::with_capacity(420 + cr.click_url.len() * 4 / 3);
        let sigs = self.signer.sign_trackers(&trackers, click_cost, &mut payload);
        AdParts {
            line_item: li,
            creative: cr,
            price_micros: win.price_micros,
            width: w,
            height: h,
            payload,
            sigs,
            decision_id,
        }
    }

    /// The counters an event books into: from the snapshot, or (for a line item no longer
    /// served) from the registry, which keeps every line item's counters.
    pub(crate) fn counters_for(&self, ad: &TrackedAd) -> (Arc<LineItemCounters>, Arc<LineItemCounters>, chrono_tz::Tz) {
        let snap = self.snapshot.load();
        match snap.line_item_by_id.get(&ad.line_item_id).map(|i| &snap.line_items[*i as usize]) {
            Some(li) => (Arc::clone(&li.counters), Arc::clone(&li.campaign_counters), li.time_zone),
            None => (
                self.registry.line_item(&ad.line_item_id),
                self.registry.campaign(&ad.campaign_id),
                self.registry.time_zone(&ad.line_item_id),
            ),
        }
    }

    /// Verifies a tracker or notice URL and claims it in the replay guard. `None`: a test
    /// decision's URL, valid but not to be counted.
    pub(crate) fn verify_and_guard(
        &self,
        kind: TrackKind,
        p: &str,
        s: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(TrackedAd, u128)>, ApiError> {
        let ad = self.signer.verify(kind, p, s, now.timestamp()).map_err(|e| {
            self.stats.tracking_rejected.fetch_add(1, Ordering::Relaxed);
            let status = if e == TrackError::Expired { StatusCode::GONE } else { StatusCode::BAD_REQUEST };
            ApiError::new(status, e.code(), "this tracking URL is not valid").with_field("p")
        })?;
        if ad.decision_id.starts_with('t') {
            return Ok(None);
        }
        let key = ReplayGuard::key(&ad);
        match self.replay.insert(key, ad.expires_at, now.timestamp()) {
            Ok(()) => Ok(Some((ad, key))),
            Err(ReplayError::Seen) => {
                self.stats.tracking_rejected.fetch_add(1, Ordering::Relaxed);
                Err(ApiError::new(StatusCode::CONFLICT, "replayed", "this event was already counted"))
            }
            Err(ReplayError::Full) => {
                Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "replay_guard_full", "try again later"))
            }
        }
    }

    /// Verifies a tracker or notice URL without claiming it.
    pub(crate) fn verify_only(
        &self,
        kind: TrackKind,
        p: &str,
        s: &str,
        now: DateTime<Utc>,
    ) -> Result<TrackedAd, ApiError> {
        self.signer.verify(kind, p, s, now.timestamp()).map_err(|e| {
            self.stats.tracking_rejected.fetch_add(1, Ordering::Relaxed);
            let status = if e == TrackError::Expired { StatusCode::GONE } else { StatusCode::BAD_REQUEST };
            ApiError::new(status, e.code(), "this tracking URL is not valid").with_field("p")
        })
    }

    /// Forgets a claimed URL whose event could not be recorded, so a retry counts.
    pub(crate) fn forget(&self, key: u128) {
        self.replay.remove(key);
    }

    /// Counts one impression or click from a tracking URL, exactly once.
    pub fn track(&self, kind: TrackKind, p: &str, s: &str) -> Result<TrackedAd, ApiError> {
        let now = Utc::now();
        let (ad, key) = match self.verify_and_guard(kind, p, s, now)? {
            Some(claimed) => claimed,
            None => {
                // A test decision's URL: valid, counted nowhere.
                let ad = self.signer.verify(kind, p, s, now.timestamp()).map_err(|e| {
                    ApiError::new(StatusCode::BAD_REQUEST, e.code(), "this tracking URL is not valid").with_field("p")
                })?;
                return Ok(ad);
            }
        };
        let event_kind = if kind == TrackKind::Click { EventKind::Click } else { EventKind::Impression };
        let event = EventRef { currency: "USD", ..ad.event(event_kind, now.timestamp_millis(), now_ms()) };
        if self.events.submit_ref(&event).is_err() {
            // Billable events are never dropped: refuse, forget the URL, let the client retry.
            self.replay.remove(key);
            self.stats.events_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "event_queue_full", "try again later"));
        }
        let (li, campaign, tz) = self.counters_for(&ad);
        let day = i64::from(chrono::Datelike::num_days_from_ce(&now.with_timezone(&tz).date_naive()));
        let creative = self.registry.creative(&ad.creative_id);
        match kind {
            TrackKind::Impression | TrackKind::Win | TrackKind::Billing | TrackKind::Loss => {
                li.settle_pending(ad.pending_minute, ad.cost_micros);
                campaign.settle_pending(ad.pending_minute, ad.cost_micros);
                li.impressions.fetch_add(1, Ordering::Relaxed);
                creative.impressions.fetch_add(1, Ordering::Relaxed);
                self.stats.impressions.fetch_add(1, Ordering::Relaxed);
                self.attribution.record_view(Touch::from_ad(&ad, now.timestamp_millis()), now.timestamp_millis());
            }
            TrackKind::Click => {
                self.attribution.record_click(Touch::from_ad(&ad, now.timestamp_millis()), now.timestamp_millis());
                li.clicks.fetch_add(1, Ordering::Relaxed);
                creative.clicks.fetch_add(1, Ordering::Relaxed);
                self.stats.clicks.fetch_add(1, Ordering::Relaxed);
            }
        }
        if ad.cost_micros > 0 {
            li.book(day, ad.cost_micros);
            campaign.book(day, ad.cost_micros);
        }
        Ok(ad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_give_device_os_and_browser() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        let got = parse_user_agent(iphone);
        assert_eq!(
            (got.device_type, got.os.as_deref(), got.browser.as_deref()),
            (Some(DeviceType::Phone), Some("ios"), Some("safari"))
        );
        let win = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let got = parse_user_agent(win);
        assert_eq!(
            (got.device_type, got.os.as_deref(), got.browser.as_deref()),
            (Some(DeviceType::Desktop), Some("windows"), Some("chrome"))
        );
        assert!(parse_user_agent("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)").crawler);
        assert_eq!(parse_user_agent("").device_type, None);
    }

    #[test]
    fn the_user_agent_cache_answers_like_the_parser_even_when_it_overflows() {
        let base =
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1";
        for i in 0..UA_CACHE_ENTRIES + 10 {
            let ua = format!("{base} build/{i}");
            assert_eq!(parse_user_agent_cached(&ua), parse_user_agent(&ua));
            // A repeat is a hit and must agree too.
            assert_eq!(parse_user_agent_cached(&ua), parse_user_agent(&ua));
        }
        let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        assert!(parse_user_agent_cached(bot).crawler && parse_user_agent_cached(bot).crawler);
    }

    #[test]
    fn page_domains_are_normalised() {
        assert_eq!(page_domain("https://www.News.example:8443/a/b?c").as_deref(), Some("news.example"));
        assert_eq!(page_domain("news.example/x").as_deref(), Some("news.example"));
        assert_eq!(page_domain("https://user@host.example/").as_deref(), Some("host.example"));
        assert_eq!(page_domain("https:///nohost"), None);
    }

    #[test]
    fn decide_bodies_are_parsed_strictly() {
        let ok = parse_decide(
            br#"{"placements":[{"id":"demo-mrec"}],"user":{"id":"u1"},"key_values":{"a":"b","c":["d","e"]}}"#,
        );
        assert!(ok.is_ok());
        let e = parse_decide(br#"{"placements":[{"id":"x","colour":1}]}"#).expect_err("unknown field");
        assert_eq!((e.code, e.field.as_deref()), ("unknown_field", Some("placements[0].colour")));
        let e = parse_decide(br#"{"placements":[{"id":"x"}],"device":{"type":"fridge"}}"#).expect_err("bad enum");
        assert_eq!(e.field.as_deref(), Some("device.type"));
        let e = parse_decide(b"{\"placements\":").expect_err("truncated");
        assert_eq!(e.code, "malformed_json");
        assert_eq!(parse_decide(b"{}").expect_err("missing").code, "missing_field");
    }
}

#[cfg(test)]
mod answer_tests {
    use super::*;
    use adp_domain::CreativeContent;

    /// A serving state on the demo catalog (SQLite in a temporary directory).
    async fn demo_serving(dir: &std::path::Path) -> Serving {
        let store: Arc<dyn CatalogStore> = Arc::new(adp_store::sqlite::SqliteStore::open_in_dir(dir).expect("store"));
        store.migrate().await.expect("migrated");
        let catalog = crate::catalog::CatalogService::new(Arc::clone(&store), crate::catalog::ChangeFeed::new(0));
        crate::demo::seed_if_empty(&catalog, store.as_ref()).await.expect("demo seeded");
        let signer = UrlSigner::new(vec![("k1".into(), b"answer-test-secret-0123".to_vec())]).expect("keys");
        let serving = Serving::with_local_log(
            ServingSettings { public_url: "https://ads.example:8443/a&b".into(), ..ServingSettings::default() },
            signer,
            &dir.join("events"),
        )
        .expect("event log");
        serving.refresh(store.as_ref()).await.expect("snapshot");
        serving
    }

    fn parts<'s>(serving: &Serving, li: &'s LineItemRt, cr: &'s adp_engine::snapshot::CreativeRt) -> AdParts<'s> {
        let (width, height) = cr.sizes.first().copied().unwrap_or((0, 0));
        let fields = TrackedFields {
            expires_at: 2_000_000_000,
            request_id: "r-1",
            decision_id: "d-1",
            slot: 0,
            advertiser_id: &li.advertiser_id,
            campaign_id: &li.campaign_id,
            line_item_id: &li.id,
            creative_id: &cr.id,
            publisher_id: "p",
            site_id: "s",
            placement_id: "pl",
            user_key: 7,
            price_micros: 1_234_567,
            cost_micros: 1_234,
            pending_minute: 0,
            deal_id: "",
            currency: "",
            landing_url: &cr.click_url,
        };
        let mut payload = String::new();
        let sigs = serving.signer.sign_trackers(&fields, 9, &mut payload);
        AdParts {
            line_item: li,
            creative: cr,
            price_micros: 1_234_567,
            width,
            height,
            payload,
            sigs,
            decision_id: "d-1".into(),
        }
    }

    fn written(serving: &Serving, ad: &AdParts<'_>) -> String {
        let mut out = Vec::new();
        serving.write_ad_json(ad, &mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[tokio::test]
    async fn ads_written_in_place_are_the_bytes_of_the_owned_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let serving = demo_serving(dir.path()).await;
        let snap = serving.snapshot_arc();
        assert!(snap.creatives.len() >= 4, "the demo has banner, video and native creatives");
        let li = &snap.line_items[0];
        // Every demo creative, then banner images whose URL and alt text need escaping twice.
        let tricky = |image_url: &str, alt: Option<&str>| adp_engine::snapshot::CreativeRt {
            id: "cr-\"x\"".into(),
            advertiser_id: li.advertiser_id.clone(),
            content: CreativeContent::BannerImage { image_url: image_url.into(), alt: alt.map(Into::into) },
            format: Format::Banner,
            sizes: vec![(320, 50)],
            click_url: "https://land.example/?a=1&b=\"2\"".into(),
            landing_domain: "land.example".into(),
            categories: vec![],
            counters: Arc::default(),
        };
        let extra = [tricky("https://img.example/a.png?x=1&y=<2>", Some("say \"hi\" & 'bye'\n\\")), tricky("", None)];
        let mut kinds = std::collections::HashSet::new();
        for cr in snap.creatives.iter().chain(&extra) {
            kinds.insert(std::mem::discriminant(&cr.content));
            let ad = parts(&serving, li, cr);
            let owned = serde_json::to_string(&serving.ad_response(&ad)).expect("json");
            assert_eq!(written(&serving, &ad), owned, "creative {}", cr.id);
        }
        assert!(kinds.len() >= 3, "banner image, video and native are all covered");
    }

    #[tokio::test]
    async fn a_json_decision_has_trackers_that_verify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let serving = demo_serving(dir.path()).await;
        let req = parse_decide(br#"{"placements":[{"id":"demo-mrec"},{"id":"no-such"}],"user":{"id":"u1"}}"#)
            .expect("request");
        let json: serde_json::Value =
            serde_json::from_slice(&serving.decide_json(&req).expect("decided")).expect("json");
        let ad = &json["decisions"][0]["ad"];
        assert_eq!(json["decisions"][0]["placement_id"], "demo-mrec");
        assert_eq!(json["decisions"][1]["ad"], serde_json::Value::Null);
        assert!(json["decisions"][1]["no_fill_reason"].is_string(), "{json}");
        for (kind, field) in [(TrackKind::Impression, "impression_url"), (TrackKind::Click, "click_url")] {
            let url = ad[field].as_str().expect("url");
            assert!(url.starts_with("https://ads.example:8443/a&b/v1/t/"), "{url}");
            let query = url.rsplit_once('?').map(|(_, q)| q).expect("query");
            let (p, s) = query.split_once("&s=").expect("p and s");
            let p = p.strip_prefix("p=").expect("p");
            let verified = serving.signer.verify(kind, p, s, Utc::now().timestamp()).expect("signature verifies");
            assert_eq!(verified.line_item_id, ad["line_item_id"].as_str().expect("li"));
            // The markup carries the same URL, HTML-escaped.
            let markup = ad["markup"].as_str().expect("markup");
            assert!(markup.contains(&markup::html_escape(url)), "{markup}");
        }
    }
}

#[cfg(test)]
mod parse_tests {
    //! `parse_decide` takes sonic-rs's answer when it has one; these hold it to what serde_json
    //! (the reference, and the error reporter) makes of the same bytes.
    use super::*;
    use proptest::prelude::*;

    /// sonic-rs accepting means serde_json accepts the same request.
    fn agree(body: &[u8]) -> Result<(), String> {
        let Ok(fast) = sonic_rs::from_slice::<DecideRequest>(body) else { return Ok(()) };
        match serde_json::from_slice::<DecideRequest>(body) {
            Ok(slow) if format!("{fast:?}") == format!("{slow:?}") => Ok(()),
            Ok(slow) => Err(format!("{:?}: sonic-rs {fast:?}, serde_json {slow:?}", String::from_utf8_lossy(body))),
            Err(e) => {
                Err(format!("{:?}: sonic-rs accepts {fast:?}, serde_json refuses: {e}", String::from_utf8_lossy(body)))
            }
        }
    }

    #[test]
    fn decide_parse_agrees_with_serde_json_on_the_edges() {
        let full = r#"{"id":"r1","placements":[{"id":"demo-mrec","sizes":["300x250"],"formats":["banner","video"],"floor_micros":1500}],"user":{"id":"u1","segments":["s1"]},"page":{"url":"https://a.example/x","referrer":null},"device":{"type":"phone","os":"ios","ua":"Mozilla","ip":"203.0.113.7","language":"de"},"geo":{"country":"DE","region":"BE"},"key_values":{"k":"v","m":["a","b"]},"deals":["D1"],"test":true}"#;
        let cases: Vec<Vec<u8>> = vec![
            full.into(),
            br#"{"placements":[{"id":"demo-mrec"}],"user":{"id":"u1"}}"#.to_vec(),
            // Refused by serde_json: each must be refused by sonic-rs too (or agree).
            br#"{"placements":[{"id":"a"}]} x"#.to_vec(),
            br#"{"placements":[{"id":"a"}],"placements":[]}"#.to_vec(),
            br#"{"placements":[{"id":"a","extra":1}]}"#.to_vec(),
            br#"{"placements":[{"id":"a"}],"unknown":{}}"#.to_vec(),
            br#"{"placements":[{"id":"\ud800"}]}"#.to_vec(),
            br#"{"placements":[{"id":"\ud800\u0041"}]}"#.to_vec(),
            b"{\"placements\":[{\"id\":\"a\x01b\"}]}".to_vec(),
            b"{\"placements\":[{\"id\":\"\xff\xfe\"}]}".to_vec(),
            b"{\"placements\":[{\"id\":\"\xc3\"}]}".to_vec(),
            br#"{"placements":[{"id":"a","floor_micros":1e3}]}"#.to_vec(),
            br#"{"placements":[{"id":"a","floor_micros":9223372036854775808}]}"#.to_vec(),
            br#"{"placements":[{"id":"a","floor_micros":-9223372036854775808}]}"#.to_vec(),
            br#"{"placements":[{"id":"a","floor_micros":1.0}]}"#.to_vec(),
            br#"{"placements":[{"id":"a","floor_micros":01}]}"#.to_vec(),
            br#"{"placements":[{"id":"a"}],"test":"true"}"#.to_vec(),
            br#"{"placements":[{"id":"a"}],"key_values":{"k":1}}"#.to_vec(),
            br#"{"placements":[{"id":"a"}],"key_values":{"k":[["x"]]}}"#.to_vec(),
            br#"{"placements":[{"id":"a"}],"device":{"type":"toaster"}}"#.to_vec(),
            br#"{"placements":[{"id":"a",}]}"#.to_vec(),
            br#"{"placements":[{"id":"a"}],}"#.to_vec(),
            br#"{"placements":[{"id":'a'}]}"#.to_vec(),
            br#"{"placements":[{"id":"a"}]"#.to_vec(),
            br#"{"placements":[{"id":"a\q"}]}"#.to_vec(),
            br#"{"placements":NaN}"#.to_vec(),
            br#"{"placements":null}"#.to_vec(),
            b"\xef\xbb\xbf{\"placements\":[]}".to_vec(),
            br#"  {"placements":[]}  "#.to_vec(),
            b"{\"placements\":[]}\x00".to_vec(),
        ];
        for case in &cases {
            agree(case).unwrap_or_else(|e| panic!("{e}"));
        }
        // The fast parse is the one that answers a good body, and it reads every field.
        let req = parse_decide(full.as_bytes()).expect("parses");
        assert_eq!(format!("{req:?}"), format!("{:?}", serde_json::from_str::<DecideRequest>(full).expect("parses")));
    }

    /// JSON-ish bodies built from the request's own keys and values, with nested and odd parts.
    fn body() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            "\"[a-z0-9x\\\\\"/ é]{0,8}\"",
            "-?[0-9]{1,20}(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,3})?",
            Just("true".to_string()),
            Just("null".to_string()),
            Just("\"\\ud83d\\ude00\"".to_string()),
            Just("\"\\u00e9\"".to_string()),
        ];
        let key = prop_oneof![
            Just("id"),
            Just("placements"),
            Just("sizes"),
            Just("formats"),
            Just("floor_micros"),
            Just("user"),
            Just("segments"),
            Just("page"),
            Just("url"),
            Just("device"),
            Just("type"),
            Just("geo"),
            Just("country"),
            Just("key_values"),
            Just("deals"),
            Just("test"),
            Just("other"),
        ];
        scalar.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec((key.clone(), inner), 0..5).prop_map(|kv| {
                    let fields: Vec<String> = kv.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn decide_parse_agrees_with_serde_json(b in body(), cut in 0usize..200, flip in proptest::option::of((0usize..200, 0u8..=255))) {
            let mut bytes = format!("{{\"placements\":[{{\"id\":\"p\"}}],\"user\":{b}}}").into_bytes();
            prop_assert!(agree(&bytes).is_ok(), "{}", agree(&bytes).unwrap_err());
            if let Some((at, byte)) = flip {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                }
            }
            prop_assert!(agree(&bytes).is_ok(), "{}", agree(&bytes).unwrap_err());
            bytes.truncate(bytes.len().saturating_sub(cut % 8));
            prop_assert!(agree(&bytes).is_ok(), "{}", agree(&bytes).unwrap_err());
            let whole = b.as_bytes();
            prop_assert!(agree(whole).is_ok(), "{}", agree(whole).unwrap_err());
        }
    }
}
