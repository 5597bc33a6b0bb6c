//! pacing: spreads each line item's daily budget over its local day (even pacing) and enforces
//! the hard budget cap. Pure CPU: no I/O, never awaits, never reads the clock (`now` is passed in).
//!
//! Three pieces, by where they run:
//!
//! - [`EvenPacer`] runs off the hot path, once every [`PacingConfig::update_interval_secs`] per
//!   line item. It compares the line item's spend so far today with a target curve
//!   ([`SpendCurve`]) and sets a *throttle*: the probability that the line item takes part in an
//!   eligible auction (probabilistic throttling, as in Agarwal et al., "Budget Pacing for
//!   Targeted Online Advertisements at LinkedIn", KDD 2014).
//! - [`ThrottleCell`] carries that probability to the hot path: one relaxed atomic load and an
//!   integer compare per decision.
//! - [`within_budget`] is the hard cap, checked at decision time and independent of pacing:
//!   pacing shapes delivery over the day, the cap alone guarantees the budget.
//!
//! # The controller
//!
//! Spend at throttle `p` is about `p × R`, where `R` is what the line item would spend per second
//! if it took part in every eligible auction. `R` is unknown and drifts with traffic, so the pacer
//! estimates it from what it observes — spend booked during each interval divided by the
//! throttle-weighted time of that interval, both summed with exponential decay
//! ([`PacingConfig::rate_memory_secs`]) — and sets
//!
//! ```text
//! desired rate = target rate now + (target spend so far − actual spend so far) / catch_up_secs
//! throttle     = clamp(desired rate / R̂, min_throttle, max_throttle)
//! ```
//!
//! That is a PI controller on the spend-rate error with model-based gain: the feed-forward term
//! follows the curve's hour-to-hour changes at once, the integral term (the cumulative shortfall
//! or excess, worked off over `catch_up_secs`) removes what the estimate gets wrong. Dividing by
//! R̂ makes the loop gain independent of how much traffic the line item sees. Until the estimate
//! rests on [`PacingConfig::min_evidence_secs`] of full-throttle-equivalent exposure (warm-up),
//! the throttle starts at `initial_throttle` and doubles each update; the estimate never forgets
//! below that evidence, so a long spell at a low throttle does not send it back to warm-up. When
//! traffic cannot deliver the target, the throttle saturates at `max_throttle` and the line item
//! spends what it can. Once the day's budget is spent the throttle drops to `min_throttle` and the
//! estimate is frozen (spend refused by the cap says nothing about traffic).
//!
//! The day is the line item's local day in its time zone: it runs from the first instant of the
//! local date to the first instant of the next, so DST days last 23 or 25 hours. The curve is
//! applied by wall-clock hour and renormalised over the hours the day actually has (a skipped
//! hour's share is spread over the others, a repeated hour counts twice). At the first update of
//! a new local day the pacer resets its day accounting (target and spend start from zero) and
//! sets the throttle afresh from the traffic estimate, which carries over.
//!
//! # Overspend bound
//!
//! Spend is booked when impressions arrive; the hard cap is checked at decision time as
//! `spent + pending + price <= budget`, where `pending` is the total reserved for decisions taken
//! but not yet impressed (or expired). Assume the amount a decision finally books is at most what
//! it reserved (true for CPM, where the price is known at decision time). Let `U` be the largest
//! number of decisions that were in flight — taken, not yet booked, and *not* included in the
//! `pending` or `spent` that some other decision's check read — and `P` the largest price of one
//! impression. Then the day's booked spend is at most `budget + U × P`: the last decision to pass
//! the check saw every other decision of the day except at most `U`, and each of those adds at
//! most `P`. When the check and the reservation happen as one step (a single decider, or
//! a compare-and-swap on `pending`), `U = 0` and spend never exceeds the budget; a reservation
//! released on timeout whose impression still arrives counts in `U`. Pacing only lowers spend and
//! never enters the bound.

use adp_domain::Micros;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use std::sync::atomic::{AtomicU32, Ordering};

const HOUR_SECS: u32 = 3_600;
const DAY_SECS: u32 = 24 * HOUR_SECS;
/// The local day is cut into slots of this length to apply the curve by wall-clock hour.
const SLOT_MILLIS: i64 = 15 * 60 * 1_000;

/// Why a pacing input was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PacingError {
    #[error("spend curve weight for hour {hour} is {weight}; weights must be finite and not negative")]
    InvalidWeight { hour: usize, weight: f64 },
    #[error("spend curve weights sum to zero; at least one hour needs a positive weight")]
    ZeroWeights,
    #[error("pacing config `{field}`: {reason}")]
    InvalidConfig { field: &'static str, reason: &'static str },
}

// ---------------------------------------------------------------------------------------------
// spend curve

/// The share of the daily budget to spend in each hour (0–23) of the line item's local day.
/// Shares are normalised to sum to 1; inside an hour the target grows linearly.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendCurve {
    shares: [f64; 24],
    /// `cumulative[h]` is the share of the hours before `h`; `cumulative[24] == 1`.
    cumulative: [f64; 25],
}

impl SpendCurve {
    /// The same share every hour.
    pub fn uniform() -> SpendCurve {
        SpendCurve::normalised([1.0 / 24.0; 24])
    }

    /// A curve from relative hourly weights: finite, not negative, with a positive sum.
    pub fn from_weights(weights: [f64; 24]) -> Result<SpendCurve, PacingError> {
        for (hour, &weight) in weights.iter().enumerate() {
            if !weight.is_finite() || weight < 0.0 {
                return Err(PacingError::InvalidWeight { hour, weight });
            }
        }
        // Scale by the largest weight first so that the sum cannot overflow.
        let max = weights.iter().copied().fold(0.0, f64::max);
        if max <= 0.0 {
            return Err(PacingError::ZeroWeights);
        }
        let scaled = weights.map(|w| w / max);
        let sum: f64 = scaled.iter().sum();
        Ok(SpendCurve::normalised(scaled.map(|w| w / sum)))
    }

    fn normalised(shares: [f64; 24]) -> SpendCurve {
        let mut cumulative = [0.0; 25];
        for hour in 0..24 {
            cumulative[hour + 1] = cumulative[hour] + shares[hour];
        }
        cumulative[24] = 1.0;
        SpendCurve { shares, cumulative }
    }

    /// The share of local hour `hour` (0–23); 0 for any other number.
    pub fn share(&self, hour: usize) -> f64 {
        self.shares.get(hour).copied().unwrap_or(0.0)
    }

    pub fn shares(&self) -> &[f64; 24] {
        &self.shares
    }

    /// The fraction of the daily budget that should be spent by `seconds_into_local_day` on a
    /// 24-hour day: the shares of the hours before, plus the elapsed part of the current hour.
    pub fn target_fraction(&self, seconds_into_local_day: u32) -> f64 {
        if seconds_into_local_day >= DAY_SECS {
            return 1.0;
        }
        let hour = (seconds_into_local_day / HOUR_SECS) as usize;
        let within = f64::from(seconds_into_local_day % HOUR_SECS) / f64::from(HOUR_SECS);
        (self.cumulative[hour] + self.shares[hour] * within).min(1.0)
    }
}

impl Default for SpendCurve {
    fn default() -> SpendCurve {
        SpendCurve::uniform()
    }
}

// ---------------------------------------------------------------------------------------------
// config

/// Tuning of [`EvenPacer`]. The defaults track a traffic-shaped curve to within a few percent
/// per hour from a cold start (see `tests/pacing_simulation.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacingConfig {
    /// How often the caller runs [`EvenPacer::update`]; the controller copes with any interval.
    pub update_interval_secs: u32,
    /// Integral gain, as a horizon: a shortfall or excess against the curve is worked off over
    /// about this many seconds (gain = 1 / catch_up_secs).
    pub catch_up_secs: f64,
    /// Time constant of the estimate of full-throttle spend rate: how fast it follows traffic.
    pub rate_memory_secs: f64,
    /// Full-throttle-equivalent seconds of observation the estimate needs before it steers (the
    /// end of warm-up); it never forgets below this.
    pub min_evidence_secs: f64,
    /// Throttle before the first estimate; warm-up doubles it each update.
    pub initial_throttle: f64,
    /// The lowest throttle: the line item keeps a trickle of participation to observe traffic.
    pub min_throttle: f64,
    pub max_throttle: f64,
}

impl Default for PacingConfig {
    fn default() -> PacingConfig {
        PacingConfig {
            update_interval_secs: 5,
            catch_up_secs: 300.0,
            rate_memory_secs: 120.0,
            min_evidence_secs: 2.0,
            initial_throttle: 0.01,
            min_throttle: 0.0001,
            max_throttle: 1.0,
        }
    }
}

impl PacingConfig {
    /// Checks the values are usable; [`EvenPacer::new`] clamps rather than fails.
    pub fn validate(&self) -> Result<(), PacingError> {
        let invalid = |field, reason| Err(PacingError::InvalidConfig { field, reason });
        if self.update_interval_secs == 0 {
            return invalid("update_interval_secs", "must be at least 1");
        }
        for (field, value) in [
            ("catch_up_secs", self.catch_up_secs),
            ("rate_memory_secs", self.rate_memory_secs),
            ("min_evidence_secs", self.min_evidence_secs),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return invalid(field, "must be a positive number of seconds");
            }
        }
        let probability = |p: f64| (0.0..=1.0).contains(&p);
        if !probability(self.min_throttle) || !probability(self.max_throttle) || self.min_throttle > self.max_throttle {
            return invalid("min_throttle", "need 0 <= min_throttle <= max_throttle <= 1");
        }
        if !(self.min_throttle..=self.max_throttle).contains(&self.initial_throttle) {
            return invalid("initial_throttle", "must lie between min_throttle and max_throttle");
        }
        Ok(())
    }

    /// The same config with every value forced into its valid range.
    fn sanitised(self) -> PacingConfig {
        let seconds = |v: f64, fallback: f64| if v.is_finite() && v > 0.0 { v } else { fallback };
        let probability = |p: f64, fallback: f64| if p.is_nan() { fallback } else { p.clamp(0.0, 1.0) };
        let defaults = PacingConfig::default();
        let max_throttle = probability(self.max_throttle, defaults.max_throttle);
        let min_throttle = probability(self.min_throttle, defaults.min_throttle).min(max_throttle);
        PacingConfig {
            update_interval_secs: self.update_interval_secs.max(1),
            catch_up_secs: seconds(self.catch_up_secs, defaults.catch_up_secs),
            rate_memory_secs: seconds(self.rate_memory_secs, defaults.rate_memory_secs),
            min_evidence_secs: seconds(self.min_evidence_secs, defaults.min_evidence_secs),
            initial_throttle: probability(self.initial_throttle, defaults.initial_throttle)
                .clamp(min_throttle, max_throttle),
            min_throttle,
            max_throttle,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// pacer

/// Even pacing of one line item's daily budget. Not shared: the pacing loop owns one per line
/// item and publishes [`EvenPacer::throttle`] through a [`ThrottleCell`].
#[derive(Debug, Clone)]
pub struct EvenPacer {
    daily_budget: Micros,
    tz: Tz,
    curve: SpendCurve,
    cfg: PacingConfig,
    throttle: f64,
    /// The local day of the last update.
    day: Option<LocalDay>,
    last: Option<Observation>,
    /// Decayed spend observed (micros) and decayed throttle-weighted seconds it was observed over;
    /// their ratio estimates the full-throttle spend rate.
    seen_spend: f64,
    seen_exposure: f64,
}

#[derive(Debug, Clone, Copy)]
struct Observation {
    at: DateTime<Utc>,
    spent: Micros,
}

impl EvenPacer {
    /// A pacer for `daily_budget` (negative counts as 0) spent over local days in `tz`. An
    /// out-of-range `cfg` is clamped (see [`PacingConfig::validate`]).
    pub fn new(daily_budget: Micros, tz: Tz, curve: SpendCurve, cfg: PacingConfig) -> EvenPacer {
        let cfg = cfg.sanitised();
        EvenPacer {
            daily_budget: daily_budget.max(0),
            tz,
            curve,
            throttle: cfg.initial_throttle,
            cfg,
            day: None,
            last: None,
            seen_spend: 0.0,
            seen_exposure: 0.0,
        }
    }

    pub fn daily_budget(&self) -> Micros {
        self.daily_budget
    }

    /// Takes a new daily budget (a catalog change) into account from the next update.
    pub fn set_daily_budget(&mut self, daily_budget: Micros) {
        self.daily_budget = daily_budget.max(0);
    }

    pub fn config(&self) -> &PacingConfig {
        &self.cfg
    }

    /// The probability that the line item takes part in an eligible auction.
    pub fn throttle(&self) -> f64 {
        self.throttle
    }

    /// Feeds the controller: `spent_today` is the line item's booked spend since the start of its
    /// current local day (see [`EvenPacer::day_start`]). Call every `update_interval_secs`, and
    /// publish [`EvenPacer::throttle`] right after: the spend observed until the next update is
    /// attributed to the throttle set now.
    pub fn update(&mut self, now: DateTime<Utc>, spent_today: Micros) {
        let (day, new_day) = match self.day.take() {
            Some(day) if day.contains(now) => (day, false),
            _ => (LocalDay::new(self.tz, &self.curve, now), true),
        };
        let spent = spent_today.max(0);

        if let Some(last) = self.last {
            // On a new day, `spent_today` counts from the day's start.
            let (from, base) = if new_day { (last.at.max(day.start), 0) } else { (last.at, last.spent) };
            let secs = seconds_between(from, now);
            if secs > 0.0 && spent < self.daily_budget {
                self.observe(secs, (spent - base).max(0) as f64);
            }
        }
        self.last = Some(Observation { at: now, spent });
        self.throttle = self.next_throttle(&day, now, spent);
        self.day = Some(day);
    }

    /// Adds one interval's observation to the estimate of the full-throttle spend rate.
    fn observe(&mut self, secs: f64, spend: f64) {
        let mut decay = (-secs / self.cfg.rate_memory_secs).exp();
        if self.seen_exposure > 0.0 && self.seen_exposure * decay < self.cfg.min_evidence_secs {
            decay = (self.cfg.min_evidence_secs / self.seen_exposure).min(1.0);
        }
        self.seen_spend = self.seen_spend * decay + spend;
        self.seen_exposure = self.seen_exposure * decay + self.throttle * secs;
    }

    fn next_throttle(&self, day: &LocalDay, now: DateTime<Utc>, spent: Micros) -> f64 {
        let cfg = &self.cfg;
        if spent >= self.daily_budget {
            return cfg.min_throttle;
        }
        let budget = self.daily_budget as f64;
        let target = budget * day.fraction(now);
        let target_rate = budget * day.rate(now);
        let desired = (target_rate + (target - spent as f64) / cfg.catch_up_secs).max(0.0);

        let next = if self.seen_exposure < cfg.min_evidence_secs {
            // warm-up: probe upward until the estimate has enough to go on
            if desired > 0.0 {
                self.throttle * 2.0
            } else {
                self.throttle
            }
        } else {
            let full_rate = self.seen_spend / self.seen_exposure;
            if full_rate > 0.0 {
                desired / full_rate
            } else if desired > 0.0 {
                cfg.max_throttle
            } else {
                cfg.min_throttle
            }
        };
        if next.is_nan() {
            cfg.min_throttle
        } else {
            next.clamp(cfg.min_throttle, cfg.max_throttle)
        }
    }

    /// The cumulative spend the curve asks for by `now` in the local day containing `now`.
    pub fn target_spend(&self, now: DateTime<Utc>) -> Micros {
        let fraction = match &self.day {
            Some(day) if day.contains(now) => day.fraction(now),
            _ => LocalDay::new(self.tz, &self.curve, now).fraction(now),
        };
        ((self.daily_budget as f64 * fraction).round() as Micros).clamp(0, self.daily_budget)
    }

    /// The start (in UTC) of the line item's local day containing `now`: local midnight, or the
    /// first instant after it when midnight falls in a DST gap.
    pub fn day_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        first_instant(self.tz, now.with_timezone(&self.tz).date_naive()).min(now)
    }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1_000.0
}

/// The first instant whose local date in `tz` is `date` (or later, for a date the zone skipped).
fn first_instant(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    // A few zones change clocks at midnight; then the day starts when the gap ends.
    for quarter in 0..3 * 96 {
        if let Some(t) = tz.from_local_datetime(&(midnight + Duration::minutes(15 * quarter))).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    Utc.from_utc_datetime(&midnight)
}

/// One local day of a line item: its bounds in UTC and the cumulative target fraction at the
/// boundaries of its 15-minute slots.
#[derive(Debug, Clone)]
struct LocalDay {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    cumulative: Vec<f64>,
}

impl LocalDay {
    fn new(tz: Tz, curve: &SpendCurve, now: DateTime<Utc>) -> LocalDay {
        let date = now.with_timezone(&tz).date_naive();
        let start = first_instant(tz, date).min(now);
        let mut end = date.succ_opt().map_or(start + Duration::days(1), |next| first_instant(tz, next));
        if end <= now {
            end = (start + Duration::days(1)).max(now + Duration::seconds(1));
        }
        let len = (end - start).num_milliseconds();
        let slots = (len + SLOT_MILLIS - 1) / SLOT_MILLIS;
        let mut cumulative = Vec::with_capacity(slots as usize + 1);
        cumulative.push(0.0);
        let mut sum = 0.0;
        for slot in 0..slots {
            let slot_len = SLOT_MILLIS.min(len - slot * SLOT_MILLIS);
            let middle = start + Duration::milliseconds(slot * SLOT_MILLIS + slot_len / 2);
            let hour = middle.with_timezone(&tz).hour() as usize;
            sum += curve.share(hour) * slot_len as f64 / 3_600_000.0;
            cumulative.push(sum);
        }
        if sum > 0.0 {
            cumulative.iter_mut().for_each(|c| *c /= sum);
        } else {
            // Only possible when a DST day lacks every weighted hour: spread evenly instead.
            for (slot, c) in cumulative.iter_mut().enumerate() {
                *c = ((slot as i64 * SLOT_MILLIS) as f64 / len as f64).min(1.0);
            }
        }
        if let Some(last) = cumulative.last_mut() {
            *last = 1.0;
        }
        LocalDay { start, end, cumulative }
    }

    fn contains(&self, now: DateTime<Utc>) -> bool {
        self.start <= now && now < self.end
    }

    fn len_millis(&self) -> i64 {
        (self.end - self.start).num_milliseconds()
    }

    /// The slot containing `now` (clamped to the day), its start and its length in milliseconds.
    fn slot(&self, now: DateTime<Utc>) -> (usize, i64, i64) {
        let len = self.len_millis();
        let elapsed = (now - self.start).num_milliseconds().clamp(0, len);
        let slots = self.cumulative.len() as i64 - 1;
        let slot = (elapsed / SLOT_MILLIS).min(slots - 1).max(0);
        let slot_start = slot * SLOT_MILLIS;
        (slot as usize, elapsed - slot_start, SLOT_MILLIS.min(len - slot_start).max(1))
    }

    /// Target fraction of the daily budget by `now`.
    fn fraction(&self, now: DateTime<Utc>) -> f64 {
        let (slot, into, slot_len) = self.slot(now);
        let (from, to) = (self.cumulative[slot], self.cumulative[slot + 1]);
        (from + (to - from) * into as f64 / slot_len as f64).clamp(0.0, 1.0)
    }

    /// Target fraction of the daily budget per second at `now`.
    fn rate(&self, now: DateTime<Utc>) -> f64 {
        if now >= self.end {
            return 0.0;
        }
        let (slot, _, slot_len) = self.slot(now);
        (self.cumulative[slot + 1] - self.cumulative[slot]) / (slot_len as f64 / 1_000.0)
    }
}

// ---------------------------------------------------------------------------------------------
// hot path

/// The throttle as the hot path reads it: a probability stored as `p × u32::MAX` in one atomic.
/// Lock-free; a reader may see the previous value for a moment, which pacing tolerates.
#[derive(Debug)]
pub struct ThrottleCell(AtomicU32);

impl ThrottleCell {
    pub fn new(probability: f64) -> ThrottleCell {
        ThrottleCell(AtomicU32::new(to_fixed(probability)))
    }

    /// Publishes a new probability (clamped to [0, 1]; NaN counts as 0).
    pub fn set(&self, probability: f64) {
        self.0.store(to_fixed(probability), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from(self.0.load(Ordering::Relaxed)) / f64::from(u32::MAX)
    }

    /// Whether to take part, given a uniformly random `u32`: true with the stored probability
    /// (exactly never at 0 and always at 1).
    pub fn admit(&self, random: u32) -> bool {
        let threshold = self.0.load(Ordering::Relaxed);
        threshold == u32::MAX || random < threshold
    }
}

/// Not throttled: every eligible auction.
impl Default for ThrottleCell {
    fn default() -> ThrottleCell {
        ThrottleCell::new(1.0)
    }
}

fn to_fixed(probability: f64) -> u32 {
    if probability.is_nan() {
        return 0;
    }
    // `as` saturates; the clamp keeps the product within range anyway.
    (probability.clamp(0.0, 1.0) * f64::from(u32::MAX)).round() as u32
}

/// The hard cap, independent of pacing: whether a decision costing `price` still fits when
/// `spent` is booked and `pending` is reserved by decisions not yet impressed. `None` is no
/// budget. An overflowing sum does not fit. See the module docs for the overspend bound.
pub fn within_budget(spent: Micros, pending: Micros, price: Micros, budget: Option<Micros>) -> bool {
    let Some(budget) = budget else {
        return true;
    };
    spent.checked_add(pending).and_then(|s| s.checked_add(price)).is_some_and(|total| total <= budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;
    use chrono_tz::Europe::Berlin;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    const BUDGET: Micros = 86_400_000_000; // 1_000_000 micros per second on a uniform curve

    fn berlin(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        let local = NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(h, min, s).unwrap();
        Berlin.from_local_datetime(&local).earliest().unwrap().with_timezone(&Utc)
    }

    /// Drives `pacer` against a deterministic plant that spends `full_rate × throttle` per second
    /// from `from` for `secs`, updating every interval; returns the spend at the end.
    fn drive(pacer: &mut EvenPacer, from: DateTime<Utc>, secs: i64, full_rate: f64, spent: &mut f64) {
        let step = i64::from(pacer.config().update_interval_secs);
        let mut t = 0;
        while t < secs {
            pacer.update(from + Duration::seconds(t), spent.round() as Micros);
            *spent += pacer.throttle() * full_rate * step as f64;
            t += step;
        }
    }

    #[test]
    fn curve_weights_are_normalised() {
        let curve = SpendCurve::from_weights([2.0; 24]).unwrap();
        assert!(curve.shares().iter().all(|&s| (s - 1.0 / 24.0).abs() < 1e-12));
        assert_eq!(curve, SpendCurve::uniform());

        let mut weights = [0.0; 24];
        weights[6] = 1.0;
        weights[18] = 3.0;
        let curve = SpendCurve::from_weights(weights).unwrap();
        assert!((curve.share(6) - 0.25).abs() < 1e-12);
        assert!((curve.share(18) - 0.75).abs() < 1e-12);
        assert_eq!(curve.share(24), 0.0);
        assert!((curve.shares().iter().sum::<f64>() - 1.0).abs() < 1e-12);

        // huge weights do not overflow the sum
        let curve = SpendCurve::from_weights([f64::MAX; 24]).unwrap();
        assert!((curve.share(0) - 1.0 / 24.0).abs() < 1e-12);
    }

    #[test]
    fn curve_rejects_bad_weights() {
        let mut weights = [1.0; 24];
        weights[3] = -0.5;
        assert_eq!(SpendCurve::from_weights(weights), Err(PacingError::InvalidWeight { hour: 3, weight: -0.5 }));
        weights[3] = f64::INFINITY;
        assert!(matches!(SpendCurve::from_weights(weights), Err(PacingError::InvalidWeight { hour: 3, .. })));
        weights[3] = f64::NAN;
        assert!(matches!(SpendCurve::from_weights(weights), Err(PacingError::InvalidWeight { hour: 3, .. })));
        assert_eq!(SpendCurve::from_weights([0.0; 24]), Err(PacingError::ZeroWeights));
    }

    #[test]
    fn curve_target_fraction_is_cumulative_and_linear_within_the_hour() {
        let uniform = SpendCurve::uniform();
        assert_eq!(uniform.target_fraction(0), 0.0);
        assert!((uniform.target_fraction(43_200) - 0.5).abs() < 1e-12);
        assert_eq!(uniform.target_fraction(86_400), 1.0);
        assert_eq!(uniform.target_fraction(u32::MAX), 1.0);

        let mut weights = [1.0; 24];
        weights[0] = 4.0; // shares: hour 0 = 4/27, others 1/27
        let curve = SpendCurve::from_weights(weights).unwrap();
        assert!((curve.target_fraction(1_800) - 2.0 / 27.0).abs() < 1e-12);
        assert!((curve.target_fraction(3_600) - 4.0 / 27.0).abs() < 1e-12);
        assert!((curve.target_fraction(5_400) - 4.5 / 27.0).abs() < 1e-12);
        assert!((curve.target_fraction(86_399) - (1.0 - 1.0 / 27.0 / 3_600.0)).abs() < 1e-12);
        let mut previous = 0.0;
        for s in (0..=86_400).step_by(600) {
            let f = curve.target_fraction(s);
            assert!(f >= previous);
            previous = f;
        }
    }

    #[test]
    fn target_spend_follows_the_curve_in_local_time() {
        let mut weights = [1.0; 24];
        weights[20] = 6.0;
        let curve = SpendCurve::from_weights(weights).unwrap();
        let pacer = EvenPacer::new(1_000_000_000, Berlin, curve.clone(), PacingConfig::default());
        let start = berlin(2026, 3, 10, 0, 0, 0);
        assert_eq!(pacer.day_start(start + Duration::hours(13)), start);
        assert_eq!(start, Utc.with_ymd_and_hms(2026, 3, 9, 23, 0, 0).unwrap());
        for secs in [0, 1, 3_599, 20 * 3_600 + 1_234, 86_399] {
            let want = (1e9 * curve.target_fraction(secs)).round() as Micros;
            let got = pacer.target_spend(start + Duration::seconds(i64::from(secs)));
            assert!((got - want).abs() <= 1, "at {secs}s: {got} vs {want}");
        }
        // the next local day starts from zero
        assert_eq!(pacer.target_spend(start + Duration::days(1)), 0);
    }

    #[test]
    fn dst_days_last_23_and_25_hours_and_renormalise_the_curve() {
        let pacer = EvenPacer::new(BUDGET, Berlin, SpendCurve::uniform(), PacingConfig::default());
        // 2026-03-29: clocks jump from 02:00 to 03:00
        let start = berlin(2026, 3, 29, 0, 0, 0);
        let next = berlin(2026, 3, 30, 0, 0, 0);
        assert_eq!(next - start, Duration::hours(23));
        assert_eq!(pacer.day_start(next - Duration::seconds(1)), start);
        let noon = berlin(2026, 3, 29, 12, 0, 0);
        let want = BUDGET as f64 * 11.0 / 23.0;
        assert!((pacer.target_spend(noon) as f64 - want).abs() < 1.0);
        assert!(pacer.target_spend(next - Duration::seconds(1)) > BUDGET - BUDGET / 80_000);

        // 2026-10-25: 03:00 falls back to 02:00
        let start = berlin(2026, 10, 25, 0, 0, 0);
        let next = berlin(2026, 10, 26, 0, 0, 0);
        assert_eq!(next - start, Duration::hours(25));
        let noon = berlin(2026, 10, 25, 12, 0, 0);
        assert!((pacer.target_spend(noon) as f64 - BUDGET as f64 * 13.0 / 25.0).abs() < 1.0);

        // a weighted curve on the short day: the skipped 02:00 hour's share goes to the others
        let mut weights = [1.0; 24];
        weights[2] = 5.0;
        let pacer = EvenPacer::new(BUDGET, Berlin, SpendCurve::from_weights(weights).unwrap(), PacingConfig::default());
        let at = |h| pacer.target_spend(berlin(2026, 3, 29, h, 0, 0)) as f64;
        // 01:00 to 03:00 is one hour (02:00 does not exist), worth what every other hour is
        assert!((at(3) - at(1) - BUDGET as f64 / 23.0).abs() < 2.0);
        assert!((at(4) - at(3) - BUDGET as f64 / 23.0).abs() < 2.0);
    }

    #[test]
    fn controller_converges_to_the_target_rate() {
        let mut pacer = EvenPacer::new(BUDGET, Berlin, SpendCurve::uniform(), PacingConfig::default());
        let start = berlin(2026, 3, 10, 0, 0, 0);
        let mut spent = 0.0;
        // full throttle would spend 4_000_000 micros/s; the target is 1_000_000/s: p = 0.25
        drive(&mut pacer, start, 3_600, 4_000_000.0, &mut spent);
        assert!((pacer.throttle() - 0.25).abs() < 0.005, "throttle {}", pacer.throttle());
        let target = pacer.target_spend(start + Duration::hours(1)) as f64;
        assert!((spent - target).abs() / target < 0.01, "spent {spent} vs target {target}");
    }

    #[test]
    fn controller_raises_throttle_when_under_delivering_and_lowers_it_when_over() {
        let mut pacer = EvenPacer::new(BUDGET, Berlin, SpendCurve::uniform(), PacingConfig::default());
        let start = berlin(2026, 3, 10, 0, 0, 0);
        let mut spent = 0.0;
        drive(&mut pacer, start, 1_800, 4_000_000.0, &mut spent);
        let steady = pacer.throttle();
        let now = start + Duration::seconds(1_800);
        let on_track = spent + steady * 4_000_000.0 * 5.0;

        let mut under = pacer.clone();
        under.update(now, (on_track * 0.7) as Micros);
        assert!(under.throttle() > steady * 1.05, "{} vs {steady}", under.throttle());

        let mut over = pacer.clone();
        over.update(now, (on_track * 1.3) as Micros);
        assert!(over.throttle() < steady * 0.95, "{} vs {steady}", over.throttle());

        // traffic drops by half: the throttle roughly doubles within a few minutes
        let mut thinner = pacer.clone();
        drive(&mut thinner, now, 900, 2_000_000.0, &mut spent.clone());
        assert!((thinner.throttle() - 0.5).abs() < 0.03, "throttle {}", thinner.throttle());
    }

    #[test]
    fn throttle_stays_within_its_bounds() {
        let cfg = PacingConfig { min_throttle: 0.05, max_throttle: 0.5, initial_throttle: 0.05, ..Default::default() };
        let start = berlin(2026, 3, 10, 0, 0, 0);

        // no traffic at all: opens up to max and stays there
        let mut starved = EvenPacer::new(BUDGET, Berlin, SpendCurve::uniform(), cfg);
        for t in 0..720 {
            starved.update(start + Duration::seconds(5 * t), 0);
            assert!((0.05..=0.5).contains(&starved.throttle()));
        }
        assert_eq!(starved.throttle(), 0.5);

        // far ahead of the curve: closes down to min and stays there
        let mut ahead = EvenPacer::new(BUDGET, Berlin, SpendCurve::uniform(), cfg);
        for t in 0..720 {
            ahead.update(start + Duration::seconds(5 * t), BUDGET / 2 + t * 1_000);
            assert!((0.05..=0.5).contains(&ahead.throttle()));
        }
        assert_eq!(ahead.throttle(), 0.05);

        // the budget is spent: min
        ahead.update(start + Duration::hours(2), BUDGET);
        assert_eq!(ahead.throttle(), 0.05);

        // defaults: within [0.0001, 1], out-of-range config is clamped
        let cfg =
            PacingConfig { min_throttle: -1.0, max_throttle: 7.0, initial_throttle: f64::NAN, ..Default::default() };
        assert!(cfg.validate().is_err());
        let mut pacer = EvenPacer::new(BUDGET, Berlin, SpendCurve::uniform(), cfg);
        assert_eq!(pacer.config().max_throttle, 1.0);
        assert_eq!(pacer.config().min_throttle, 0.0);
        for t in 0..100 {
            pacer.update(start + Duration::seconds(5 * t), 0);
            assert!((0.0..=1.0).contains(&pacer.throttle()));
        }
        assert!(PacingConfig::default().validate().is_ok());
    }

    #[test]
    fn day_rollover_resets_the_day() {
        let mut pacer = EvenPacer::new(BUDGET, Berlin, SpendCurve::uniform(), PacingConfig::default());
        let start = berlin(2026, 3, 10, 0, 0, 0);
        let mut spent = 0.0;
        drive(&mut pacer, start, 86_400 - 10, 4_000_000.0, &mut spent);
        let steady = pacer.throttle();
        assert!((steady - 0.25).abs() < 0.01);

        // the day's budget is gone just before midnight: closed
        let late = start + Duration::seconds(86_395);
        pacer.update(late, BUDGET);
        assert_eq!(pacer.throttle(), pacer.config().min_throttle);
        assert_eq!(pacer.target_spend(late), (BUDGET as f64 * 86_395.0 / 86_400.0).round() as Micros);

        // the next local day: target and accounting start from zero, the throttle from the estimate
        let next = start + Duration::seconds(86_400 + 2);
        assert_eq!(pacer.day_start(next), start + Duration::days(1));
        assert_eq!(next.with_timezone(&Berlin).day(), 11);
        pacer.update(next, 0);
        assert_eq!(pacer.target_spend(next), 2_000_000);
        assert!(pacer.throttle() > steady, "behind on the new day: {} vs {steady}", pacer.throttle());
        let mut spent = 0.0;
        drive(&mut pacer, next + Duration::seconds(5), 1_800, 4_000_000.0, &mut spent);
        assert!((pacer.throttle() - 0.25).abs() < 0.01, "throttle {}", pacer.throttle());
    }

    #[test]
    fn within_budget_edges() {
        assert!(within_budget(0, 0, 0, Some(0)));
        assert!(within_budget(60, 30, 10, Some(100)));
        assert!(!within_budget(60, 30, 11, Some(100)));
        assert!(!within_budget(100, 0, 1, Some(100)));
        assert!(within_budget(i64::MAX, i64::MAX, i64::MAX, None));
        // overflow does not fit, and does not panic
        assert!(!within_budget(i64::MAX - 1, 1, 1, Some(i64::MAX)));
        assert!(!within_budget(i64::MAX, 1, 0, Some(i64::MAX)));
        assert!(within_budget(i64::MAX - 2, 1, 1, Some(i64::MAX)));
        assert!(!within_budget(i64::MIN, -1, 0, Some(0)));
    }

    #[test]
    fn throttle_cell_admits_at_its_probability() {
        let mut rng = SmallRng::seed_from_u64(7);
        for p in [0.0, 0.001, 0.1, 0.25, 0.5, 0.9, 1.0] {
            let cell = ThrottleCell::new(p);
            assert!((cell.get() - p).abs() < 1e-9);
            let draws = 200_000;
            let admitted = (0..draws).filter(|_| cell.admit(rng.random())).count();
            let rate = admitted as f64 / f64::from(draws);
            assert!((rate - p).abs() < 0.005, "p {p}: rate {rate}");
            if p == 0.0 {
                assert_eq!(admitted, 0);
            }
            if p == 1.0 {
                assert_eq!(admitted, draws as usize);
            }
        }
        let cell = ThrottleCell::default();
        assert!(cell.admit(u32::MAX) && cell.admit(0));
        cell.set(0.0);
        assert!(!cell.admit(0));
        cell.set(f64::NAN);
        assert_eq!(cell.get(), 0.0);
        cell.set(3.0);
        assert_eq!(cell.get(), 1.0);
        cell.set(-1.0);
        assert_eq!(cell.get(), 0.0);
    }
}
