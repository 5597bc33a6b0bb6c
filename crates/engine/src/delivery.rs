//! delivery: the live counters of each line item and creative — spend today and over the
//! lifetime, spend decided but not yet impressed (pending), impressions and clicks, and the
//! pacing throttle. Lock-free atomics shared by every core; they outlive catalog snapshots
//! (a registry keyed by id hands the same counters to each new snapshot).

use crate::pacing::ThrottleCell;
use adp_domain::Micros;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Minutes a decision's spend stays pending; impressions arriving later are refused by the
/// tracking layer (its URLs expire), so pending and spend never count the same money twice.
pub const PENDING_MINUTES: usize = 16;

#[derive(Debug)]
struct PendingBucket {
    minute: AtomicI64,
    micros: AtomicI64,
}

/// Adds `micros` to `amount`, which counts for the period in `period`: a later period first
/// takes the slot over and restarts the amount at zero; an earlier one adds nothing. (Two
/// threads crossing a period boundary together may lose one addition; see README.)
fn add_in_period(period: &AtomicI64, amount: &AtomicI64, now: i64, micros: Micros) {
    let seen = period.load(Ordering::Acquire);
    if seen < now && period.compare_exchange(seen, now, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        amount.store(0, Ordering::Release);
    }
    if period.load(Ordering::Acquire) == now {
        amount.fetch_add(micros, Ordering::AcqRel);
    }
}

/// Distributed mode: the budget this process may still reserve, leased from the shared ledger
/// (DragonflyDB). Off (unlimited) in embedded mode. The lease task sets `granted_total`; the hot
/// path adds to `consumed_total` and to the per-minute buckets the lease task reports.
#[derive(Debug)]
pub struct LeaseCell {
    enabled: std::sync::atomic::AtomicBool,
    granted_total: AtomicI64,
    consumed_total: AtomicI64,
    by_minute: [PendingBucket; PENDING_MINUTES],
}

impl Default for LeaseCell {
    fn default() -> Self {
        LeaseCell {
            enabled: std::sync::atomic::AtomicBool::new(false),
            granted_total: AtomicI64::new(0),
            consumed_total: AtomicI64::new(0),
            by_minute: std::array::from_fn(|_| PendingBucket {
                minute: AtomicI64::new(i64::MIN),
                micros: AtomicI64::new(0),
            }),
        }
    }
}

impl LeaseCell {
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Whether `micros` more may be reserved (always, when leasing is off).
    pub fn allows(&self, micros: Micros) -> bool {
        !self.is_enabled() || self.remaining() >= micros.max(1)
    }

    /// What is left of the grant.
    pub fn remaining(&self) -> Micros {
        self.granted_total.load(Ordering::Acquire) - self.consumed_total.load(Ordering::Acquire)
    }

    /// Reserves `micros` decided at `minute` (no-op when leasing is off).
    pub fn consume(&self, minute: i64, micros: Micros) {
        if !self.is_enabled() || micros <= 0 {
            return;
        }
        self.consumed_total.fetch_add(micros, Ordering::AcqRel);
        let b = &self.by_minute[minute.rem_euclid(PENDING_MINUTES as i64) as usize];
        add_in_period(&b.minute, &b.micros, minute, micros);
    }

    /// The lease task: everything consumed so far, and the per-minute amounts consumed since the
    /// last drain (taken out of the buckets). Read `consumed` first, then drain: an amount
    /// consumed in between is reported now and counted locally until the next `grant`.
    pub fn drain(&self) -> (Micros, Vec<(i64, Micros)>) {
        let consumed = self.consumed_total.load(Ordering::Acquire);
        let mut used = Vec::new();
        for b in &self.by_minute {
            let m = b.micros.swap(0, Ordering::AcqRel);
            if m > 0 {
                used.push((b.minute.load(Ordering::Acquire), m));
            }
        }
        (consumed, used)
    }

    /// Leasing on with nothing granted yet (distributed mode, before the first renewal).
    pub fn require(&self) {
        if !self.is_enabled() {
            self.grant(0, 0);
        }
    }

    /// The lease task: a report that did not reach the ledger goes back for the next one.
    pub fn restore(&self, used: &[(i64, Micros)]) {
        for &(minute, micros) in used {
            let b = &self.by_minute[minute.rem_euclid(PENDING_MINUTES as i64) as usize];
            add_in_period(&b.minute, &b.micros, minute, micros);
        }
    }

    /// The lease task: the ledger now grants `outstanding` to this process, counted from the
    /// moment `consumed` (from [`LeaseCell::drain`]) was read. Turns leasing on.
    pub fn grant(&self, consumed: Micros, outstanding: Micros) {
        self.granted_total.store(consumed + outstanding.max(0), Ordering::Release);
        self.enabled.store(true, Ordering::Release);
    }
}

/// Counters of one line item.
#[derive(Debug)]
pub struct LineItemCounters {
    day: AtomicI64,
    spent_today: AtomicI64,
    spent_lifetime: AtomicI64,
    pending: [PendingBucket; PENDING_MINUTES],
    pub impressions: AtomicU64,
    pub clicks: AtomicU64,
    /// Probability of taking part in an auction (even pacing); 1.0 when not throttled.
    pub throttle: ThrottleCell,
    /// Distributed mode's budget lease.
    pub lease: LeaseCell,
}

impl Default for LineItemCounters {
    fn default() -> Self {
        LineItemCounters {
            day: AtomicI64::new(i64::MIN),
            spent_today: AtomicI64::new(0),
            spent_lifetime: AtomicI64::new(0),
            pending: std::array::from_fn(|_| PendingBucket {
                minute: AtomicI64::new(i64::MIN),
                micros: AtomicI64::new(0),
            }),
            impressions: AtomicU64::new(0),
            clicks: AtomicU64::new(0),
            throttle: ThrottleCell::new(1.0),
            lease: LeaseCell::default(),
        }
    }
}

impl LineItemCounters {
    /// Spend in the budget day `day` (days are counted in the line item's time zone).
    pub fn spent_on(&self, day: i64) -> Micros {
        if self.day.load(Ordering::Acquire) == day {
            self.spent_today.load(Ordering::Acquire)
        } else {
            0
        }
    }

    pub fn spent_lifetime(&self) -> Micros {
        self.spent_lifetime.load(Ordering::Acquire)
    }

    /// Books spend on `day`. A new day resets the daily figure.
    pub fn book(&self, day: i64, micros: Micros) {
        add_in_period(&self.day, &self.spent_today, day, micros);
        self.spent_lifetime.fetch_add(micros, Ordering::AcqRel);
    }

    /// Distributed mode: the shared ledger's spend of `day` and of the lifetime replaces this
    /// process's own figures.
    pub fn sync_spend(&self, day: i64, spent_day: Micros, spent_lifetime: Micros) {
        add_in_period(&self.day, &self.spent_today, day, 0);
        if self.day.load(Ordering::Acquire) == day {
            self.spent_today.store(spent_day, Ordering::Release);
        }
        self.spent_lifetime.store(spent_lifetime, Ordering::Release);
    }

    /// Books spend from an earlier budget day (lifetime only), e.g. when restoring after a
    /// restart.
    pub fn book_earlier_day(&self, micros: Micros) {
        self.spent_lifetime.fetch_add(micros, Ordering::AcqRel);
    }

    /// Spend decided in the last `PENDING_MINUTES` minutes and not yet impressed.
    pub fn pending(&self, now_minute: i64) -> Micros {
        self.pending
            .iter()
            .filter(|b| now_minute.saturating_sub(b.minute.load(Ordering::Acquire)) < PENDING_MINUTES as i64)
            // A bucket can dip below zero if a reservation raced with the bucket's reuse and
            // its impression settled later; never let that cancel other reservations.
            .map(|b| b.micros.load(Ordering::Acquire).max(0))
            .sum::<Micros>()
    }

    pub fn add_pending(&self, minute: i64, micros: Micros) {
        let b = &self.pending[minute.rem_euclid(PENDING_MINUTES as i64) as usize];
        add_in_period(&b.minute, &b.micros, minute, micros);
    }

    /// Moves spend decided at `minute` from pending to booked (an impression arrived).
    pub fn settle_pending(&self, minute: i64, micros: Micros) {
        let b = &self.pending[minute.rem_euclid(PENDING_MINUTES as i64) as usize];
        if b.minute.load(Ordering::Acquire) == minute {
            b.micros.fetch_sub(micros, Ordering::AcqRel);
        }
    }
}

/// Counters of one creative (for CTR-optimised rotation).
#[derive(Debug, Default)]
pub struct CreativeCounters {
    pub impressions: AtomicU64,
    pub clicks: AtomicU64,
}

/// Hands out the counters of each line item, campaign and creative by id, the same ones to
/// every snapshot. Used only when snapshots are built (off the hot path).
#[derive(Debug, Default)]
pub struct CounterRegistry {
    line_items: Mutex<HashMap<String, Arc<LineItemCounters>>>,
    campaigns: Mutex<HashMap<String, Arc<LineItemCounters>>>,
    creatives: Mutex<HashMap<String, Arc<CreativeCounters>>>,
    /// Each line item's budget time zone, as last built, for booking spend of line items that
    /// are no longer in the served snapshot.
    time_zones: Mutex<HashMap<String, chrono_tz::Tz>>,
    /// Distributed mode: every line item's and campaign's budget is leased; counters start
    /// with nothing granted.
    leased: std::sync::atomic::AtomicBool,
}

fn get_or_insert<T: Default>(map: &Mutex<HashMap<String, Arc<T>>>, id: &str) -> Arc<T> {
    let mut m = match map.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    Arc::clone(m.entry(id.to_string()).or_default())
}

impl CounterRegistry {
    /// Turns budget leasing on for every counter, present and future.
    pub fn require_leases(&self) {
        self.leased.store(true, Ordering::Release);
        for map in [&self.line_items, &self.campaigns] {
            let m = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for c in m.values() {
                c.lease.require();
            }
        }
    }

    fn leased(&self, c: Arc<LineItemCounters>) -> Arc<LineItemCounters> {
        if self.leased.load(Ordering::Acquire) {
            c.lease.require();
        }
        c
    }

    pub fn line_item(&self, id: &str) -> Arc<LineItemCounters> {
        self.leased(get_or_insert(&self.line_items, id))
    }

    /// Campaign-level spend uses the same counter shape (its pending and throttle are unused).
    pub fn campaign(&self, id: &str) -> Arc<LineItemCounters> {
        self.leased(get_or_insert(&self.campaigns, id))
    }

    pub fn creative(&self, id: &str) -> Arc<CreativeCounters> {
        get_or_insert(&self.creatives, id)
    }

    pub fn set_time_zone(&self, line_item_id: &str, tz: chrono_tz::Tz) {
        let mut m = match self.time_zones.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if m.get(line_item_id) != Some(&tz) {
            m.insert(line_item_id.to_string(), tz);
        }
    }

    /// The line item's budget time zone as last built (UTC if never seen).
    pub fn time_zone(&self, line_item_id: &str) -> chrono_tz::Tz {
        match self.time_zones.lock() {
            Ok(m) => m.get(line_item_id).copied().unwrap_or(chrono_tz::UTC),
            Err(p) => p.into_inner().get(line_item_id).copied().unwrap_or(chrono_tz::UTC),
        }
    }

    /// Every line item's counters, for the pacing loop.
    pub fn all_line_items(&self) -> Vec<(String, Arc<LineItemCounters>)> {
        match self.line_items.lock() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect(),
            Err(p) => p.into_inner().iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_spend_resets_on_a_new_day_and_lifetime_accumulates() {
        let c = LineItemCounters::default();
        c.book(100, 5);
        c.book(100, 7);
        assert_eq!((c.spent_on(100), c.spent_lifetime()), (12, 12));
        c.book(101, 3);
        assert_eq!((c.spent_on(100), c.spent_on(101), c.spent_lifetime()), (0, 3, 15));
    }

    #[test]
    fn pending_expires_and_settles() {
        let c = LineItemCounters::default();
        c.add_pending(10, 100);
        c.add_pending(11, 50);
        assert_eq!(c.pending(11), 150);
        c.settle_pending(10, 100);
        assert_eq!(c.pending(11), 50);
        assert_eq!(c.pending(11 + PENDING_MINUTES as i64), 0, "old pending expires");
        c.add_pending(10 + PENDING_MINUTES as i64, 7);
        // Minute 10's bucket is reused for minute 26 and starts empty; minute 11 is still pending.
        assert_eq!(c.pending(10 + PENDING_MINUTES as i64), 7 + 50, "a reused bucket starts empty");
    }

    #[test]
    fn a_lease_allows_what_was_granted_and_reports_what_was_consumed() {
        let lease = LeaseCell::default();
        assert!(lease.allows(1_000_000), "leasing off: unlimited");
        lease.consume(10, 5);
        assert_eq!(lease.drain().1, vec![], "nothing is recorded while leasing is off");
        lease.grant(0, 100);
        assert!(lease.allows(100) && !lease.allows(101));
        lease.consume(10, 60);
        lease.consume(11, 30);
        assert_eq!(lease.remaining(), 10);
        let (consumed, mut used) = lease.drain();
        used.sort();
        assert_eq!((consumed, used), (90, vec![(10, 60), (11, 30)]));
        // Consumed after the drain read: reported at the next drain, counted locally now.
        lease.consume(11, 5);
        // The ledger took the 90 out of the grant and topped it up to 100 outstanding.
        lease.grant(consumed, 100);
        assert_eq!(lease.remaining(), 95);
        assert_eq!(lease.drain(), (95, vec![(11, 5)]));
        assert!(!lease.allows(0) || lease.remaining() > 0);
    }

    #[test]
    fn synced_spend_replaces_the_local_figures() {
        let c = LineItemCounters::default();
        c.book(100, 5);
        c.sync_spend(100, 70, 900);
        assert_eq!((c.spent_on(100), c.spent_lifetime()), (70, 900));
        c.sync_spend(101, 3, 903);
        assert_eq!((c.spent_on(100), c.spent_on(101)), (0, 3));
    }
}
