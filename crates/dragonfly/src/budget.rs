//! budget: line items' shared spend, and per-process leases on what is left of their budgets.
//! Every call is one script per line item, pipelined for many; the semantics and the overspend
//! bound are in the crate docs ("Budget ledger").

use crate::client::{array, int};
use crate::{keys, Dragonfly, Error};
use redis::{Script, ScriptInvocation};
use std::time::Duration;

const RENEW_LUA: &str = include_str!("lua/budget_renew.lua");
const BOOK_LUA: &str = include_str!("lua/budget_book.lua");
const RELEASE_LUA: &str = include_str!("lua/budget_release.lua");

/// How long a day hash lives after its last write: 8 days.
pub const DEFAULT_DAY_KEY_TTL: Duration = Duration::from_secs(8 * 86_400);
/// How long a lifetime hash lives after its last write: 400 days.
pub const DEFAULT_LIFETIME_KEY_TTL: Duration = Duration::from_secs(400 * 86_400);

/// One process's lease renewal on one line item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    pub line_item_id: String,
    /// The budget day: a day number in the line item's time zone, computed by the caller.
    pub day: i64,
    /// Micros per budget day, if capped.
    pub daily_budget: Option<i64>,
    /// Micros over the line item's life, if capped.
    pub lifetime_budget: Option<i64>,
    /// This process, unique among the live ones (e.g. host name and start time).
    pub proc_id: String,
    /// The most this process holds at once.
    pub slice_micros: i64,
    /// What this process reserved from its grant since it sent its last renew, as (decision
    /// minute, micros); a minute is a Unix time in minutes (`unix_ms / 60_000`). Reservations made
    /// while a renew is in flight belong to the next one, and come off the grant it returns.
    pub used: Vec<(i64, i64)>,
    pub now_ms: i64,
    /// How long the grant is the process's without a renew; after that other processes reclaim it.
    pub lease_ttl_ms: i64,
    /// Pending reservations older than this many minutes are dropped.
    pub pending_window_minutes: i64,
}

/// A line item's ledger as one renew left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseState {
    /// What this process may still reserve: its outstanding grant after `used` was taken out of
    /// it. `i64::MAX` when the request set no budget at all (nothing is leased).
    pub granted_micros: i64,
    pub spent_day: i64,
    /// Live pending reservations of the day.
    pub pending_day: i64,
    pub spent_lifetime: i64,
    pub pending_lifetime: i64,
}

/// One impression, click or billing notice to book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub line_item_id: String,
    /// The budget day of the decision.
    pub day: i64,
    /// The Unix minute of the decision, whose pending reservation this settles.
    pub decided_minute: i64,
    /// Spend booked.
    pub micros: i64,
    /// The reservation the decision made that this notice ends (0 for a CPC click, whose
    /// decision reserved nothing).
    pub settle_micros: i64,
}

/// Budget spend and leases on Dragonfly; see the crate docs.
#[derive(Debug, Clone)]
pub struct BudgetLedger {
    df: Dragonfly,
    day_key_ttl_secs: u64,
    life_key_ttl_secs: u64,
    renew: Script,
    book: Script,
    release: Script,
}

impl BudgetLedger {
    pub fn new(df: &Dragonfly) -> BudgetLedger {
        BudgetLedger {
            df: df.clone(),
            day_key_ttl_secs: DEFAULT_DAY_KEY_TTL.as_secs(),
            life_key_ttl_secs: DEFAULT_LIFETIME_KEY_TTL.as_secs(),
            renew: Script::new(RENEW_LUA),
            book: Script::new(BOOK_LUA),
            release: Script::new(RELEASE_LUA),
        }
    }

    /// How long a day hash lives after its last write (at least 1 s).
    pub fn with_day_key_ttl(mut self, ttl: Duration) -> BudgetLedger {
        self.day_key_ttl_secs = ttl.as_secs().max(1);
        self
    }

    /// How long a lifetime hash lives after its last write (at least 1 s).
    pub fn with_lifetime_key_ttl(mut self, ttl: Duration) -> BudgetLedger {
        self.life_key_ttl_secs = ttl.as_secs().max(1);
        self
    }

    /// Renews this process's lease on one line item; see [`BudgetLedger::renew_many`].
    pub async fn renew(&self, req: &LeaseRequest) -> Result<LeaseState, Error> {
        let mut states = self.renew_many(std::slice::from_ref(req)).await?;
        states.pop().ok_or_else(|| Error::Protocol("no reply to a renew".into()))
    }

    /// Renews this process's leases on many line items in one round trip: reports what it
    /// reserved (`used`) as pending, and tops its grant up to the slice within what the budgets
    /// allow. States come back in the order of `reqs`. Nothing is sent if a request is invalid.
    ///
    /// On an error the renewals may or may not have been applied; sending the same `used` again
    /// then counts it twice as pending (conservative: less is granted, never more).
    pub async fn renew_many(&self, reqs: &[LeaseRequest]) -> Result<Vec<LeaseState>, Error> {
        let mut calls = Vec::with_capacity(reqs.len());
        for req in reqs {
            calls.push(self.renew_call(req)?);
        }
        let replies = self.df.run_scripts(&self.renew, &calls).await?;
        reqs.iter()
            .zip(replies)
            .map(|(req, reply)| {
                let v = array(reply, 5)?;
                let unlimited = req.daily_budget.is_none() && req.lifetime_budget.is_none();
                Ok(LeaseState {
                    granted_micros: if unlimited { i64::MAX } else { int(&v[0])? },
                    spent_day: int(&v[1])?,
                    pending_day: int(&v[2])?,
                    spent_lifetime: int(&v[3])?,
                    pending_lifetime: int(&v[4])?,
                })
            })
            .collect()
    }

    fn renew_call(&self, req: &LeaseRequest) -> Result<ScriptInvocation<'_>, Error> {
        keys::check_tag_id("line item id", &req.line_item_id)?;
        check_proc(&req.proc_id)?;
        non_negative("slice_micros", req.slice_micros)?;
        non_negative("pending_window_minutes", req.pending_window_minutes)?;
        if req.lease_ttl_ms <= 0 {
            return Err(Error::Invalid(format!("lease_ttl_ms {} is not positive", req.lease_ttl_ms)));
        }
        for budget in [req.daily_budget, req.lifetime_budget].into_iter().flatten() {
            non_negative("budget", budget)?;
        }
        check_used(&req.used)?;
        let budget_arg = |b: Option<i64>| b.map(|b| b.to_string()).unwrap_or_default();
        let mut call = self.renew.prepare_invoke();
        call.key(keys::budget_day(self.df.prefix(), &req.line_item_id, req.day))
            .key(keys::budget_life(self.df.prefix(), &req.line_item_id))
            .arg(&req.proc_id)
            .arg(req.now_ms)
            .arg(req.lease_ttl_ms)
            .arg(req.now_ms.div_euclid(60_000))
            .arg(req.pending_window_minutes)
            .arg(req.slice_micros)
            .arg(budget_arg(req.daily_budget))
            .arg(budget_arg(req.lifetime_budget))
            .arg(self.day_key_ttl_secs)
            .arg(self.life_key_ttl_secs)
            .arg(req.used.len());
        for &(minute, micros) in &req.used {
            call.arg(minute).arg(micros);
        }
        Ok(call)
    }

    /// Books one notice; see [`BudgetLedger::book_many`].
    pub async fn book(
        &self,
        line_item_id: &str,
        day: i64,
        decided_minute: i64,
        micros: i64,
        settle_micros: i64,
    ) -> Result<(), Error> {
        let booking = Booking { line_item_id: line_item_id.to_string(), day, decided_minute, micros, settle_micros };
        self.book_many(std::slice::from_ref(&booking)).await
    }

    /// Books impression, click and billing notices in one round trip: each adds its micros to the
    /// spend of its day and of the line item's life, and takes its `settle_micros` off the pending
    /// reservations of its decision minute (on both). A minute's pending may dip below zero when
    /// the notice beats the deciding process's report of the reservation (the money is then still
    /// in that process's grant, so spent + pending + leased stays exact); the report brings it
    /// back. Nothing is sent if a booking
    /// is invalid (negative micros, a bad id); on an error the bookings may or may not have been
    /// applied.
    pub async fn book_many(&self, bookings: &[Booking]) -> Result<(), Error> {
        let mut calls = Vec::with_capacity(bookings.len());
        for b in bookings {
            keys::check_tag_id("line item id", &b.line_item_id)?;
            non_negative("micros", b.micros)?;
            non_negative("settle_micros", b.settle_micros)?;
            let mut call = self.book.prepare_invoke();
            call.key(keys::budget_day(self.df.prefix(), &b.line_item_id, b.day))
                .key(keys::budget_life(self.df.prefix(), &b.line_item_id))
                .arg(b.micros)
                .arg(b.decided_minute)
                .arg(self.day_key_ttl_secs)
                .arg(self.life_key_ttl_secs)
                .arg(b.settle_micros);
            calls.push(call);
        }
        self.df.run_scripts(&self.book, &calls).await?;
        Ok(())
    }

    /// A process that stops: reports what it reserved since its last renew (`used`, as in
    /// [`LeaseRequest::used`]) as pending and gives back the rest of its grant on the day and
    /// the lifetime hash, at once, without waiting for the lease to expire.
    pub async fn release(&self, line_item_id: &str, day: i64, proc_id: &str, used: &[(i64, i64)]) -> Result<(), Error> {
        keys::check_tag_id("line item id", line_item_id)?;
        check_proc(proc_id)?;
        check_used(used)?;
        let mut call = self.release.prepare_invoke();
        call.key(keys::budget_day(self.df.prefix(), line_item_id, day))
            .key(keys::budget_life(self.df.prefix(), line_item_id))
            .arg(proc_id)
            .arg(self.day_key_ttl_secs)
            .arg(self.life_key_ttl_secs)
            .arg(used.len());
        for &(minute, micros) in used {
            call.arg(minute).arg(micros);
        }
        self.df.run_scripts(&self.release, std::slice::from_ref(&call)).await?;
        Ok(())
    }
}

fn check_proc(proc_id: &str) -> Result<(), Error> {
    if proc_id.is_empty() {
        return Err(Error::Invalid("the process id is empty".into()));
    }
    Ok(())
}

fn check_used(used: &[(i64, i64)]) -> Result<(), Error> {
    for &(_, micros) in used {
        non_negative("used micros", micros)?;
    }
    Ok(())
}

fn non_negative(what: &str, value: i64) -> Result<(), Error> {
    if value < 0 {
        return Err(Error::Invalid(format!("{what} {value} is negative")));
    }
    Ok(())
}
