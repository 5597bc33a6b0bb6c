//! Budget pacing on simulated days: synthetic traffic against one even-paced line item on a
//! compressed clock (time is a `DateTime` the test advances; nothing sleeps). Seeded, so every
//! run sees the same requests.
//!
//! Each simulated second: impressions whose delay ran out are booked (spend) or dropped (their
//! reservation released); every `update_interval_secs` the pacer gets the booked spend and its
//! throttle is published to a `ThrottleCell`; then the second's requests arrive. For each one the
//! line item takes part with the cell's probability, wins with `WIN_RATE` at a price drawn
//! uniformly from `MIN_PRICE..=MAX_PRICE`, and — if `within_budget` of spend + pending — reserves
//! the price as pending; the impression arrives 1–3 s later, or (5%) never.

use adp_engine::pacing::{within_budget, EvenPacer, PacingConfig, SpendCurve, ThrottleCell};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Europe::Berlin;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const BUDGET: i64 = 1_000_000_000;
const WIN_RATE: f64 = 0.6;
const MIN_PRICE: i64 = 2_500;
const MAX_PRICE: i64 = 7_500;
const MEAN_PRICE: f64 = 5_000.0;
const RENDER_RATE: f64 = 0.95;
const MAX_DELAY_SECS: i64 = 3;
/// Decisions in flight that a budget check did not see. The simulation checks and reserves in
/// one step (one decider), so by the bound in `pacing`'s docs spend never exceeds the budget.
const UNSEEN_IN_FLIGHT: i64 = 0;

/// A web-traffic-shaped spend curve in local time: quiet at night, office hours, evening peak.
const CURVE_WEIGHTS: [f64; 24] = [
    2.0, 1.2, 0.8, 0.6, 0.6, 0.9, 1.8, 3.2, 4.2, 4.6, 4.8, 5.0, //
    5.4, 5.2, 5.0, 5.0, 5.2, 5.6, 6.2, 7.0, 7.6, 7.2, 5.6, 3.6,
];

/// Spend opportunity over target, by local hour: traffic's shape is not the curve's, and it
/// jumps at hour boundaries (the hard case for the controller). At least 3.4× everywhere.
const AMPLE: [f64; 24] = [
    3.6, 4.4, 3.4, 5.0, 3.4, 4.0, 3.5, 4.6, 3.5, 3.9, 4.2, 3.4, //
    4.8, 3.6, 3.4, 4.1, 3.7, 3.4, 3.5, 3.4, 3.4, 3.8, 4.5, 3.9,
];

/// One simulated local hour (by elapsed time from the day's start).
#[derive(Debug, Default, Clone)]
struct Hour {
    local_hour: u32,
    /// Booked spend.
    spend: i64,
    /// What the line item could have booked taking part in everything (won and rendered).
    opportunity: i64,
    requests: u64,
}

#[derive(Debug)]
struct Day {
    hours: Vec<Hour>,
    total_spend: i64,
    /// (seconds into the day, throttle) at every update.
    throttles: Vec<(i64, f64)>,
    /// Decisions refused by the hard cap.
    capped: u64,
    max_pending: i64,
}

fn curve() -> SpendCurve {
    SpendCurve::from_weights(CURVE_WEIGHTS).expect("valid curve")
}

fn local_midnight(date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight");
    Berlin.from_local_datetime(&midnight).single().expect("midnight exists in Berlin").with_timezone(&Utc)
}

/// Simulates the local day `date` in Berlin with traffic offering `opportunity[h]` × the hour's
/// share of the budget in local hour `h` (in expectation, on a 24-hour day).
fn simulate(date: NaiveDate, opportunity: &[f64; 24], seed: u64) -> Day {
    let cfg = PacingConfig::default();
    let curve = curve();
    let start = local_midnight(date);
    let day_len = (local_midnight(date + Duration::days(1)) - start).num_seconds();
    let hours = (day_len / 3_600) as usize;

    // requests per second by local hour, for the spend opportunity asked for
    let requests_per_sec: [f64; 24] = std::array::from_fn(|h| {
        BUDGET as f64 * curve.share(h) * opportunity[h] / 3_600.0 / (WIN_RATE * MEAN_PRICE * RENDER_RATE)
    });

    let mut rng = SmallRng::seed_from_u64(seed);
    let mut pacer = EvenPacer::new(BUDGET, Berlin, curve, cfg);
    let cell = ThrottleCell::new(pacer.throttle());
    let interval = i64::from(cfg.update_interval_secs);

    let mut day = Day {
        hours: (0..hours)
            .map(|h| Hour {
                local_hour: (start + Duration::hours(h as i64)).with_timezone(&Berlin).hour(),
                ..Default::default()
            })
            .collect(),
        total_spend: 0,
        throttles: Vec::new(),
        capped: 0,
        max_pending: 0,
    };
    let (mut spent, mut pending) = (0_i64, 0_i64);
    // impressions (book) and dropped decisions (release) falling due, by second modulo the ring
    let mut due = [(0_i64, 0_i64); (MAX_DELAY_SECS + 1) as usize];

    for t in 0..day_len + MAX_DELAY_SECS + 1 {
        let now = start + Duration::seconds(t);
        let bucket = ((t / 3_600) as usize).min(hours - 1);
        let (book, release) = std::mem::take(&mut due[(t % (MAX_DELAY_SECS + 1)) as usize]);
        spent += book;
        pending -= book + release;
        day.hours[bucket].spend += book;
        if t >= day_len {
            continue; // only impressions of the day's decisions still arrive
        }

        if t % interval == 0 {
            pacer.update(now, spent);
            cell.set(pacer.throttle());
            day.throttles.push((t, pacer.throttle()));
        }

        let rate = requests_per_sec[now.with_timezone(&Berlin).hour() as usize] * rng.random_range(0.8..1.2);
        let requests = rate.floor() as u64 + u64::from(rng.random_bool(rate.fract()));
        day.hours[bucket].requests += requests;
        for _ in 0..requests {
            let takes_part = cell.admit(rng.random());
            let won = rng.random_bool(WIN_RATE);
            let price = rng.random_range(MIN_PRICE..=MAX_PRICE);
            let renders = rng.random_bool(RENDER_RATE);
            if won && renders {
                day.hours[bucket].opportunity += price;
            }
            if !takes_part || !won {
                continue;
            }
            if !within_budget(spent, pending, price, Some(BUDGET)) {
                day.capped += 1;
                continue;
            }
            pending += price;
            day.max_pending = day.max_pending.max(pending);
            let slot = ((t + rng.random_range(1..=MAX_DELAY_SECS)) % (MAX_DELAY_SECS + 1)) as usize;
            if renders {
                due[slot].0 += price;
            } else {
                due[slot].1 += price;
            }
        }
    }
    assert_eq!(pending, 0, "every reservation is booked or released");
    day.total_spend = spent;
    day
}

/// Each simulated hour's target: the budget split over the hours this day has, by the curve's
/// share of their local hour (a skipped hour's share spread over the rest).
fn hourly_targets(day: &Day) -> Vec<f64> {
    let curve = curve();
    let total: f64 = day.hours.iter().map(|h| curve.share(h.local_hour as usize)).sum();
    day.hours.iter().map(|h| BUDGET as f64 * curve.share(h.local_hour as usize) / total).collect()
}

/// Asserts every hour within ±10% of its target; returns the largest relative error.
fn assert_hours_on_target(day: &Day) -> f64 {
    let targets = hourly_targets(day);
    let mut worst: f64 = 0.0;
    for (hour, target) in day.hours.iter().zip(&targets) {
        assert!(hour.opportunity as f64 >= 3.0 * target, "traffic too thin in {hour:?}: target {target}");
        let error = (hour.spend as f64 - target) / target;
        println!(
            "local {:02}:00  target {:>11.0}  spend {:>11}  error {:>+6.2}%  opportunity {:.1}x  requests {}",
            hour.local_hour,
            target,
            hour.spend,
            100.0 * error,
            hour.opportunity as f64 / target,
            hour.requests
        );
        assert!(error.abs() <= 0.10, "local hour {:02}: spend {} vs target {target:.0}", hour.local_hour, hour.spend);
        worst = worst.max(error.abs());
    }
    worst
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

#[test]
fn even_pacing_follows_the_curve_hour_by_hour() {
    let day = simulate(date(2026, 3, 10), &AMPLE, 42);
    assert_eq!(day.hours.len(), 24);
    let worst = assert_hours_on_target(&day);
    println!(
        "worst hour {:.2}%, total {} of {BUDGET} ({:+.3}%), capped decisions {}, max pending {}",
        100.0 * worst,
        day.total_spend,
        100.0 * (day.total_spend - BUDGET) as f64 / BUDGET as f64,
        day.capped,
        day.max_pending
    );
    assert!(day.total_spend <= BUDGET + UNSEEN_IN_FLIGHT * MAX_PRICE);
    assert!(day.total_spend >= BUDGET * 99 / 100, "the budget is delivered: {}", day.total_spend);
    // throttling did the work: well below full participation
    assert!(day.throttles.iter().skip(60).all(|&(_, p)| p < 0.6));
}

#[test]
fn even_pacing_on_the_short_dst_day() {
    // 2026-03-29: Berlin skips 02:00–03:00, the local day lasts 23 hours
    let day = simulate(date(2026, 3, 29), &AMPLE, 7);
    assert_eq!(day.hours.len(), 23);
    assert!(day.hours.iter().all(|h| h.local_hour != 2));
    let worst = assert_hours_on_target(&day);
    println!("dst day: worst hour {:.2}%, total {} of {BUDGET}", 100.0 * worst, day.total_spend);
    assert!(day.total_spend <= BUDGET + UNSEEN_IN_FLIGHT * MAX_PRICE);
    assert!(day.total_spend >= BUDGET * 99 / 100);
}

#[test]
fn thin_traffic_opens_the_throttle_and_spends_what_it_can() {
    // traffic offers half the budget, every hour
    let day = simulate(date(2026, 3, 10), &[0.5; 24], 3);
    let opportunity: i64 = day.hours.iter().map(|h| h.opportunity).sum();
    println!("thin: spent {} of opportunity {opportunity}, budget {BUDGET}", day.total_spend);
    assert!(day.total_spend <= BUDGET);
    // after warm-up (a minute at most) the throttle is wide open
    assert!(day.throttles.iter().filter(|&&(t, _)| t >= 60).all(|&(_, p)| p >= 0.99), "throttle not fully open");
    assert!(day.total_spend as f64 >= 0.99 * opportunity as f64, "spent {} of {opportunity}", day.total_spend);
}

#[test]
fn late_surge_catches_up_without_exceeding_the_budget() {
    // thin until 20:00 (half of what the curve asks), then a flood: pacing catches up on the
    // shortfall and the hard cap holds
    let mut opportunity = [0.5; 24];
    opportunity[20..].copy_from_slice(&[12.0; 4]);
    let day = simulate(date(2026, 3, 10), &opportunity, 11);
    println!("surge: spent {} of {BUDGET}, capped decisions {}", day.total_spend, day.capped);
    assert!(day.throttles.iter().filter(|&&(t, _)| (60..20 * 3_600).contains(&t)).all(|&(_, p)| p >= 0.99));
    assert!(day.total_spend <= BUDGET + UNSEEN_IN_FLIGHT * MAX_PRICE);
    assert!(day.total_spend >= BUDGET * 99 / 100, "caught up: {}", day.total_spend);
}
