//! distributed: what the serving roles share across processes, on DragonflyDB.
//!
//! - Frequency caps: the engine decides against this process's last snapshot of the user's
//!   counters (none yet: all at 0); when a capped line item wins, one script call commits what
//!   the request counted — re-checking each cap atomically on the server — and reads back the
//!   user's counters of every capped line item the request matched, which become the snapshot
//!   for the next request. So a request costs at most one round trip (none when nothing capped
//!   won). A winner whose cap another process filled meanwhile (a stale snapshot) becomes a
//!   `frequency_capped` no-fill: a cap of N holds across any number of processes; a stale
//!   snapshot can cost a fill, never an impression over the cap.
//! - Budgets: every [`SharedSettings::renew_ms`] one pipelined round trip renews this process's
//!   lease on every budgeted line item and campaign (reporting what it reserved, bringing back
//!   the shared spend); decisions reserve from the lease in memory. Trackers and notices book
//!   spend into the ledger in batches. Worst-case overspend: P × `lease_slice_micros` for P
//!   serving processes (adp-dragonfly's crate docs), plus CPC clicks on ads already out when the
//!   budget ran out (as in embedded mode).
//! - Replay guards: a tracker or notice URL is claimed with SET NX before it is counted, so it
//!   counts once whichever process it reaches.
//! - CTR statistics: impressions and clicks per creative and line item are added up in Dragonfly
//!   and read back every [`SharedSettings::ctr_sync_ms`], so CTR-based ranking sees all traffic.
//!
//! A tracker answers only after its event is written to this process's log (`kill -9` loses no
//! acknowledged event; the Kafka forwarder ships it after a restart).

use crate::bidder::NoticeBooking;
use crate::error::ApiError;
use crate::serving::{DecideRequest, DecideResponse, Serving};
use crate::tracking::{TrackKind, TrackedAd};
use adp_domain::{CapRule, FrequencyStore, Micros};
use adp_dragonfly::budget::{Booking, BudgetLedger, LeaseRequest};
use adp_dragonfly::caps::{CapCounts, CapSnapshot, FrequencyCaps};
use adp_dragonfly::ctr::CtrStats;
use adp_dragonfly::Dragonfly;
use adp_engine::delivery::{LineItemCounters, PENDING_MINUTES};
use adp_engine::pipeline::budget_day;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Settings of the shared counters.
#[derive(Clone, Debug)]
pub struct SharedSettings {
    /// This process's name in the budget ledger; unique per process start.
    pub proc_id: String,
    pub lease_slice_micros: Micros,
    pub lease_ttl_ms: i64,
    pub renew_ms: u64,
    pub ctr_sync_ms: u64,
}

/// Counters of the shared-state traffic, for metrics and tests.
#[derive(Debug, Default)]
pub struct SharedStats {
    /// Winners turned into no-fills because another process filled the cap first.
    pub cap_conflicts: AtomicU64,
    /// Requests decided without capped line items because Dragonfly did not answer.
    pub cap_unavailable: AtomicU64,
    pub lease_renewals: AtomicU64,
    pub lease_errors: AtomicU64,
    pub bookings: AtomicU64,
    pub booking_errors: AtomicU64,
    pub replay_rejected: AtomicU64,
}

/// One counter's part in a lease round: its counters, budget day, consumption read at the
/// drain and the per-minute amounts reported.
type LeaseCellRound = (Arc<LineItemCounters>, i64, Micros, Vec<(i64, Micros)>);

/// The serving roles' shared state on Dragonfly.
pub struct Shared {
    df: Dragonfly,
    caps: FrequencyCaps,
    ledger: BudgetLedger,
    replay: adp_dragonfly::replay::ReplayGuard,
    ctr: CtrStats,
    settings: SharedSettings,
    bookings: Mutex<Vec<Booking>>,
    ctr_deltas: Mutex<HashMap<String, (u64, u64)>>,
    /// Each user's counters as last read back, by user key (bounded, idle entries expire).
    cap_snapshots: moka::sync::Cache<u64, Arc<CapSnapshot>>,
    pub stats: SharedStats,
}

/// Users whose cap counters a serving process remembers between requests.
const CAP_SNAPSHOT_USERS: u64 = 1_000_000;

/// Bookings held while Dragonfly is away; beyond this the oldest are dropped, loudly (the
/// events themselves are safe in the log and in analytics; only the live budget view lags).
const MAX_HELD_BOOKINGS: usize = 1_000_000;

/// A frequency store that has no room for anything: while Dragonfly is away, capped line items
/// are not served (a cap is a promise; an uncapped line item still fills).
struct NoRoom;

impl FrequencyStore for NoRoom {
    fn has_room(&self, _: u64, _: &[CapRule], _: i64) -> bool {
        false
    }

    fn try_count(&self, _: u64, _: &[CapRule], _: i64) -> bool {
        false
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable", format!("{what}: {e}; try again"))
}

/// The ledger entity of a line item and of a campaign (one namespace in the ledger).
fn li_entity(id: &str) -> String {
    format!("li:{id}")
}

fn campaign_entity(id: &str) -> String {
    format!("cmp:{id}")
}

impl Shared {
    /// Connects to Dragonfly (`url`, keys under `prefix`); fails with a message naming it.
    pub async fn connect(url: &str, prefix: &str, settings: SharedSettings) -> Result<Shared, String> {
        let df = Dragonfly::connect(url, prefix).await.map_err(|e| format!("dragonfly: {e}"))?;
        df.ping().await.map_err(|e| format!("dragonfly: {e}"))?;
        Ok(Shared {
            caps: FrequencyCaps::new(&df),
            ledger: BudgetLedger::new(&df),
            replay: adp_dragonfly::replay::ReplayGuard::new(&df),
            ctr: CtrStats::new(&df),
            df,
            settings,
            bookings: Mutex::new(Vec::new()),
            ctr_deltas: Mutex::new(HashMap::new()),
            cap_snapshots: moka::sync::Cache::builder()
                .max_capacity(CAP_SNAPSHOT_USERS)
                .time_to_idle(Duration::from_secs(3_600))
                .build(),
            stats: SharedStats::default(),
        })
    }

    pub fn settings(&self) -> &SharedSettings {
        &self.settings
    }

    /// Whether Dragonfly answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), String> {
        self.df.ping().await.map_err(|e| e.to_string())
    }

    /// Loads `user`'s counters of `rules`; `None` when Dragonfly did not answer.
    async fn load_caps(&self, user: Option<u64>, rules: &[CapRule], now_secs: i64) -> Option<CapCounts> {
        let user = user?;
        match self.caps.load(user, rules, now_secs).await {
            Ok(c) => Some(c),
            Err(e) => {
                self.stats.cap_unavailable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "frequency caps unavailable; capped line items sit this request out");
                None
            }
        }
    }

    /// `POST /v1/decide` in distributed mode: at most one round trip to Dragonfly.
    pub async fn decide(&self, serving: &Serving, req: &DecideRequest) -> Result<DecideResponse, ApiError> {
        let mut decided = serving.decide_prepare(req)?;
        let (user, now_secs) = (decided.user(), decided.now().timestamp());
        let counts = match user {
            Some(u) => match self.cap_snapshots.get(&u) {
                Some(snapshot) => CapCounts::from_snapshot(u, &snapshot),
                None => CapCounts::new(u),
            },
            None => CapCounts::new(0),
        };
        serving.decide_run(req, &mut decided, &counts);
        let capped = decided.capped_winners();
        if let (Some(user), false, false) = (user, capped.is_empty(), req.test) {
            let rules = serving.cap_rules_in_play(req, &decided);
            match self.caps.commit_and_read(user, &counts, &rules, now_secs).await {
                Ok((counted, fresh)) => {
                    for (slot, ok) in capped.iter().zip(counted.iter().chain(std::iter::repeat(&false))) {
                        if !ok {
                            self.stats.cap_conflicts.fetch_add(1, Ordering::Relaxed);
                            decided.revoke(*slot);
                        }
                    }
                    let merged = match self.cap_snapshots.get(&user) {
                        Some(old) => old.merged(&fresh),
                        None => fresh,
                    };
                    self.cap_snapshots.insert(user, Arc::new(merged));
                }
                Err(e) => {
                    // Not known to be counted: serve none of them rather than risk the cap.
                    tracing::warn!(error = %e, "frequency cap commit failed; capped winners withdrawn");
                    self.stats.cap_unavailable.fetch_add(1, Ordering::Relaxed);
                    for slot in capped {
                        decided.revoke(slot);
                    }
                }
            }
        }
        Ok(serving.decide_finish(req, decided))
    }

    /// The cap rules an OpenRTB request may meet: those of every RTB line item (bids only read
    /// counters; the win counts).
    pub fn rtb_cap_rules(serving: &Serving) -> Vec<CapRule> {
        let snap = serving.snapshot();
        let mut rules = Vec::new();
        for li in snap.line_items.iter().filter(|li| li.rtb) {
            for r in &li.caps {
                if !rules.contains(r) {
                    rules.push(*r);
                }
            }
        }
        rules
    }

    /// The user's counters for a bid, or a store without room when they cannot be had.
    pub async fn bid_caps(&self, user: Option<u64>, rules: &[CapRule]) -> Box<dyn FrequencyStore> {
        if rules.is_empty() {
            return Box::new(NoRoom);
        }
        match self.load_caps(user, rules, Utc::now().timestamp()).await {
            Some(c) => Box::new(c),
            None => Box::new(NoRoom),
        }
    }

    /// Claims a verified URL in the shared replay guard: Ok(false) when another process (or
    /// an earlier request) counted it already.
    async fn claim(&self, ad: &TrackedAd, now_secs: i64) -> Result<bool, ApiError> {
        let key = format!("{:032x}", crate::tracking::ReplayGuard::key(ad));
        let ttl = u64::try_from(ad.expires_at - now_secs).unwrap_or(0) + 60;
        self.replay.first_use(&key, ttl).await.map_err(|e| unavailable("replay guard", e))
    }

    /// Counts a tracker exactly once across processes, answering once the event is on disk.
    pub async fn track(&self, serving: &Serving, kind: TrackKind, p: &str, s: &str) -> Result<TrackedAd, ApiError> {
        let now = Utc::now();
        let ad = serving.verify_only(kind, p, s, now)?;
        if !ad.decision_id.starts_with('t') && !self.claim(&ad, now.timestamp()).await? {
            self.stats.replay_rejected.fetch_add(1, Ordering::Relaxed);
            serving.stats.tracking_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(StatusCode::CONFLICT, "replayed", "this event was already counted"));
        }
        let ad = serving.track(kind, p, s)?;
        serving.await_written().await;
        if !ad.decision_id.starts_with('t') {
            let (cost, settled) = match kind {
                TrackKind::Click => (ad.cost_micros, 0),
                _ => (ad.cost_micros, ad.cost_micros),
            };
            self.book(serving, &ad, now, cost, settled);
            self.add_ctr(&ad, kind == TrackKind::Click);
        }
        Ok(ad)
    }

    /// Counts a win, billing or loss notice exactly once across processes.
    pub async fn notice(
        &self,
        serving: &Serving,
        kind: TrackKind,
        p: &str,
        s: &str,
        price: Option<&str>,
        loss: Option<&str>,
    ) -> Result<crate::bidder::NoticeOutcome, ApiError> {
        let now = Utc::now();
        let ad = serving.verify_only(kind, p, s, now)?;
        if !ad.decision_id.starts_with('t') && !self.claim(&ad, now.timestamp()).await? {
            self.stats.replay_rejected.fetch_add(1, Ordering::Relaxed);
            serving.stats.tracking_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(StatusCode::CONFLICT, "replayed", "this event was already counted"));
        }
        let (outcome, booking) = serving.notice_booked(kind, p, s, price, loss)?;
        serving.await_written().await;
        if let Some(NoticeBooking { ad, cost, settled, counts_cap }) = booking {
            if cost > 0 || settled > 0 {
                self.book(serving, &ad, now, cost, settled);
            }
            if cost > 0 || counts_cap {
                self.add_ctr(&ad, false);
            }
            if counts_cap {
                self.count_won_impression(serving, &ad, now).await;
            }
        }
        Ok(outcome)
    }

    /// A won impression of a capped line item uses up the user's cap in the shared store.
    async fn count_won_impression(&self, serving: &Serving, ad: &TrackedAd, now: DateTime<Utc>) {
        let rules = {
            let snap = serving.snapshot();
            match snap.line_item_by_id.get(&ad.line_item_id) {
                Some(i) => snap.line_items[*i as usize].caps.clone(),
                None => return,
            }
        };
        let now_secs = now.timestamp();
        let Some(counts) = self.load_caps(Some(ad.user_key), &rules, now_secs).await else { return };
        // Counted even past the cap: the impression happened; later bids see the cap full.
        let _ = counts.try_count(ad.user_key, &rules, now_secs);
        if let Err(e) = self.caps.commit(ad.user_key, &counts, now_secs).await {
            tracing::warn!(error = %e, "could not count a won impression against its frequency cap");
        }
    }

    /// Queues spend for the ledger (flushed by [`run_bookings`]).
    fn book(&self, serving: &Serving, ad: &TrackedAd, now: DateTime<Utc>, cost: Micros, settled: Micros) {
        let (_, _, tz) = serving.counters_for(ad);
        let day = i64::from(chrono::Datelike::num_days_from_ce(&now.with_timezone(&tz).date_naive()));
        let mut held = lock(&self.bookings);
        for entity in [li_entity(&ad.line_item_id), campaign_entity(&ad.campaign_id)] {
            held.push(Booking {
                line_item_id: entity,
                day,
                decided_minute: ad.pending_minute,
                micros: cost.max(0),
                settle_micros: settled.max(0),
            });
        }
    }

    fn add_ctr(&self, ad: &TrackedAd, click: bool) {
        let (i, c) = if click { (0, 1) } else { (1, 0) };
        let mut deltas = lock(&self.ctr_deltas);
        for key in [format!("cr:{}", ad.creative_id), li_entity(&ad.line_item_id)] {
            let e = deltas.entry(key).or_default();
            e.0 += i;
            e.1 += c;
        }
    }

    /// Sends the held bookings; on failure they are kept for the next round.
    async fn flush_bookings(&self) {
        let batch = std::mem::take(&mut *lock(&self.bookings));
        if batch.is_empty() {
            return;
        }
        match self.ledger.book_many(&batch).await {
            Ok(()) => {
                self.stats.bookings.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.booking_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, held = batch.len(), "budget bookings not sent; retrying");
                let mut held = lock(&self.bookings);
                let mut merged = batch;
                merged.append(&mut held);
                if merged.len() > MAX_HELD_BOOKINGS {
                    let dropped = merged.len() - MAX_HELD_BOOKINGS;
                    tracing::error!(dropped, "too many budget bookings held while Dragonfly is away; the oldest are dropped from the live budget view (events and reports are unaffected)");
                    merged.drain(..dropped);
                }
                *held = merged;
            }
        }
    }

    /// One lease round for every budgeted line item and campaign of the served snapshot.
    pub async fn renew_leases(&self, serving: &Serving) {
        let snap = serving.snapshot_arc();
        let now = Utc::now();
        let now_ms = now.timestamp_millis();
        let mut reqs = Vec::new();
        let mut cells: Vec<LeaseCellRound> = Vec::new();
        let mut seen_campaigns = std::collections::HashSet::new();
        for li in snap.line_items.iter() {
            if li.daily_budget.is_some() || li.lifetime_budget.is_some() {
                let day = budget_day(li, now);
                let (consumed, used) = li.counters.lease.drain();
                reqs.push(LeaseRequest {
                    line_item_id: li_entity(&li.id),
                    day,
                    daily_budget: li.daily_budget,
                    lifetime_budget: li.lifetime_budget,
                    proc_id: self.settings.proc_id.clone(),
                    slice_micros: self.settings.lease_slice_micros,
                    used: used.clone(),
                    now_ms,
                    lease_ttl_ms: self.settings.lease_ttl_ms,
                    pending_window_minutes: PENDING_MINUTES as i64,
                });
                cells.push((Arc::clone(&li.counters), day, consumed, used));
            }
            if let Some(budget) = li.campaign_budget {
                if seen_campaigns.insert(li.campaign_id.clone()) {
                    let day = budget_day(li, now);
                    let (consumed, used) = li.campaign_counters.lease.drain();
                    reqs.push(LeaseRequest {
                        line_item_id: campaign_entity(&li.campaign_id),
                        day,
                        daily_budget: None,
                        lifetime_budget: Some(budget),
                        proc_id: self.settings.proc_id.clone(),
                        slice_micros: self.settings.lease_slice_micros,
                        used: used.clone(),
                        now_ms,
                        lease_ttl_ms: self.settings.lease_ttl_ms,
                        pending_window_minutes: PENDING_MINUTES as i64,
                    });
                    cells.push((Arc::clone(&li.campaign_counters), day, consumed, used));
                }
            }
        }
        if reqs.is_empty() {
            return;
        }
        match self.ledger.renew_many(&reqs).await {
            Ok(states) => {
                self.stats.lease_renewals.fetch_add(1, Ordering::Relaxed);
                for ((counters, day, consumed, _), state) in cells.iter().zip(states) {
                    counters.lease.grant(*consumed, state.granted_micros);
                    counters.sync_spend(*day, state.spent_day, state.spent_lifetime);
                }
            }
            Err(e) => {
                // Reserved amounts go back into the buckets for the next report; the grants in
                // hand stay (bounded by the slice) until the ledger answers again.
                self.stats.lease_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "budget lease renewal failed; spending what is leased");
                for (counters, _, _, used) in &cells {
                    counters.lease.restore(used);
                }
                for (counters, _, _, _) in &cells {
                    // A line item never leased yet may not spend at all.
                    counters.lease.require();
                }
            }
        }
    }

    /// Gives back every lease (at shutdown), so other processes may spend it at once.
    pub async fn release_leases(&self, serving: &Serving) {
        self.flush_bookings().await;
        let snap = serving.snapshot_arc();
        let now = Utc::now();
        for li in snap.line_items.iter() {
            if li.daily_budget.is_some() || li.lifetime_budget.is_some() {
                let (_, used) = li.counters.lease.drain();
                let day = budget_day(li, now);
                if let Err(e) = self.ledger.release(&li_entity(&li.id), day, &self.settings.proc_id, &used).await {
                    tracing::warn!(error = %e, line_item = %li.id, "lease not released; it expires on its own");
                }
            }
        }
    }

    /// Sends the CTR deltas and brings back the totals of every served creative and line item.
    async fn sync_ctr(&self, serving: &Serving) {
        let deltas: Vec<(String, u64, u64)> = lock(&self.ctr_deltas).drain().map(|(k, (i, c))| (k, i, c)).collect();
        if !deltas.is_empty() {
            let refs: Vec<(&str, u64, u64)> = deltas.iter().map(|(k, i, c)| (k.as_str(), *i, *c)).collect();
            if let Err(e) = self.ctr.add(&refs).await {
                tracing::warn!(error = %e, "CTR statistics not sent; retrying");
                let mut held = lock(&self.ctr_deltas);
                for (k, i, c) in deltas {
                    let e = held.entry(k).or_default();
                    e.0 += i;
                    e.1 += c;
                }
                return;
            }
        }
        let snap = serving.snapshot_arc();
        let mut keys = Vec::with_capacity(snap.creatives.len() + snap.line_items.len());
        keys.extend(snap.creatives.iter().map(|c| format!("cr:{}", c.id)));
        keys.extend(snap.line_items.iter().map(|li| li_entity(&li.id)));
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        match self.ctr.load(&refs).await {
            Ok(totals) => {
                let (cr, li) = totals.split_at(snap.creatives.len().min(totals.len()));
                for (c, (i, k)) in snap.creatives.iter().zip(cr) {
                    let counters = serving.registry().creative(&c.id);
                    counters.impressions.store(*i, Ordering::Relaxed);
                    counters.clicks.store(*k, Ordering::Relaxed);
                }
                for (l, (i, k)) in snap.line_items.iter().zip(li) {
                    l.counters.impressions.store(*i, Ordering::Relaxed);
                    l.counters.clicks.store(*k, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %e, "CTR statistics not read; ranking on the last ones"),
        }
    }
}

/// Renews the budget leases every `renew_ms`.
pub async fn run_leases(serving: Arc<Serving>, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(shared.settings.renew_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        shared.renew_leases(&serving).await;
    }
}

/// Sends budget bookings every 20 ms.
pub async fn run_bookings(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        shared.flush_bookings().await;
    }
}

/// Exchanges CTR statistics every `ctr_sync_ms`.
pub async fn run_ctr_sync(serving: Arc<Serving>, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(shared.settings.ctr_sync_ms.max(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        shared.sync_ctr(&serving).await;
    }
}
