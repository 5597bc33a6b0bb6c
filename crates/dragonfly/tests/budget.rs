//! The budget ledger against a real Redis server: leases, pending, bookings, both budgets.

mod common;

use adp_dragonfly::{Booking, BudgetLedger, Error, LeaseRequest, LeaseState};
use common::{connect, hash, raw, ttl, unique_prefix};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A fixed clock: 2026-03-10 12:00 UTC, in ms, and its minute.
const NOW_MS: i64 = 1_773_144_000_000;
const MINUTE: i64 = NOW_MS / 60_000;
const DAY: i64 = 20_522;

fn req(li: &str, proc_id: &str, daily: Option<i64>, lifetime: Option<i64>, slice: i64) -> LeaseRequest {
    LeaseRequest {
        line_item_id: li.to_string(),
        day: DAY,
        daily_budget: daily,
        lifetime_budget: lifetime,
        proc_id: proc_id.to_string(),
        slice_micros: slice,
        used: Vec::new(),
        now_ms: NOW_MS,
        lease_ttl_ms: 10_000,
        pending_window_minutes: 60,
    }
}

fn day_key(prefix: &str, li: &str, day: i64) -> String {
    format!("{prefix}:bud:{{{li}}}:{day}")
}

fn life_key(prefix: &str, li: &str) -> String {
    format!("{prefix}:bud:{{{li}}}:life")
}

fn sum_prefixed(h: &HashMap<String, i64>, p: &str) -> i64 {
    h.iter().filter(|(k, _)| k.starts_with(p)).map(|(_, v)| v).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_renewers_never_commit_more_than_the_budget() {
    const BUDGET: i64 = 1_000_000;
    const SLICE: i64 = 5_000;
    let prefix = unique_prefix("budget-race");
    let mut ledgers = Vec::new();
    for _ in 0..3 {
        ledgers.push(BudgetLedger::new(&connect(&prefix).await));
    }
    let done = Arc::new(AtomicBool::new(false));

    // an observer checks the invariant on every snapshot while the renewers run
    let observer = {
        let key = day_key(&prefix, "li-1", DAY);
        let done = done.clone();
        tokio::spawn(async move {
            let mut con = raw().await;
            let mut snapshots = 0;
            while !done.load(Ordering::Relaxed) {
                let h = hash(&mut con, &key).await;
                let leased = h.get("leased").copied().unwrap_or(0);
                assert_eq!(leased, sum_prefixed(&h, "g:"), "leased is the sum of the grants: {h:?}");
                let committed = h.get("spent").copied().unwrap_or(0) + sum_prefixed(&h, "p:") + leased;
                assert!(committed <= BUDGET, "spent + pending + leased = {committed}: {h:?}");
                snapshots += 1;
            }
            snapshots
        })
    };

    let mut tasks = Vec::new();
    for task in 0..12 {
        let ledger = ledgers[task % 3].clone();
        tasks.push(tokio::spawn(async move {
            let proc_id = format!("proc-{task}");
            let mut reserved = 0;
            let mut used: Vec<(i64, i64)> = Vec::new();
            loop {
                let mut r = req("li-1", &proc_id, Some(BUDGET), None, SLICE);
                r.used = used.clone();
                let state = ledger.renew(&r).await.expect("renew");
                assert!(state.granted_micros <= SLICE);
                assert!(state.spent_day + state.pending_day + state.granted_micros <= BUDGET, "{state:?}");
                // what was just reported is pending now: its impressions arrive
                let reported: i64 = used.iter().map(|u| u.1).sum();
                if reported > 0 {
                    ledger.book("li-1", DAY, MINUTE, reported, reported).await.expect("book");
                }
                if state.granted_micros == 0 {
                    return reserved;
                }
                // reserve the whole grant, in two decisions
                let half = state.granted_micros / 2;
                used = vec![(MINUTE, half), (MINUTE, state.granted_micros - half)];
                reserved += state.granted_micros;
            }
        }));
    }
    let mut reserved = 0;
    for task in tasks {
        reserved += task.await.expect("renewer");
    }
    done.store(true, Ordering::Relaxed);
    let snapshots = observer.await.expect("observer");
    assert!(snapshots > 0);

    assert_eq!(reserved, BUDGET, "every micro reserved once, none more");
    let mut con = raw().await;
    let h = hash(&mut con, &day_key(&prefix, "li-1", DAY)).await;
    assert_eq!(h.get("spent"), Some(&BUDGET));
    assert_eq!(h.get("leased"), Some(&0));
    assert_eq!(h.len(), 2, "no grants, no pending left: {h:?}");
    let life = hash(&mut con, &life_key(&prefix, "li-1")).await;
    assert_eq!(life.get("spent"), Some(&BUDGET), "the lifetime hash books the same spend");
}

#[tokio::test]
async fn an_expired_lease_of_a_dead_process_is_reclaimed() {
    let prefix = unique_prefix("budget-expiry");
    let ledger = BudgetLedger::new(&connect(&prefix).await);
    let mut con = raw().await;
    let key = day_key(&prefix, "li-1", DAY);
    let at = |proc_id: &str, ms: i64| {
        let mut r = req("li-1", proc_id, Some(500), None, 400);
        r.now_ms = NOW_MS + ms;
        r.lease_ttl_ms = 1_000;
        r
    };

    assert_eq!(ledger.renew(&at("a", 0)).await.expect("a").granted_micros, 400);
    assert_eq!(ledger.renew(&at("b", 100)).await.expect("b").granted_micros, 100, "what a left");
    let h = hash(&mut con, &key).await;
    assert_eq!((h["leased"], h["g:a"], h["t:a"], h["g:b"]), (500, 400, NOW_MS + 1_000, 100));

    // a stops renewing; its lease ends at +1 s; b's next renew takes the room
    assert_eq!(ledger.renew(&at("b", 900)).await.expect("b").granted_micros, 100, "a's lease is still live");
    assert_eq!(ledger.renew(&at("b", 2_000)).await.expect("b").granted_micros, 400);
    let h = hash(&mut con, &key).await;
    assert_eq!(h.get("leased"), Some(&400));
    assert!(!h.contains_key("g:a") && !h.contains_key("t:a"), "a's lease is gone: {h:?}");

    // a was only stalled: it reports the 150 it reserved meanwhile and gets nothing more; the
    // ledger is over-committed by 50 (the bound: one slice per lost lease) ...
    let mut late = at("a", 2_100);
    late.used = vec![(MINUTE, 150)];
    let state = ledger.renew(&late).await.expect("a again");
    assert_eq!(
        state,
        LeaseState { granted_micros: 0, spent_day: 0, pending_day: 150, spent_lifetime: 0, pending_lifetime: 150 }
    );
    // ... which b's next renew gives back
    assert_eq!(ledger.renew(&at("b", 2_200)).await.expect("b").granted_micros, 350);
    let h = hash(&mut con, &key).await;
    assert_eq!((h["leased"], h[&format!("p:{MINUTE}")]), (350, 150));
}

#[tokio::test]
async fn release_returns_the_unused_grant() {
    let prefix = unique_prefix("budget-release");
    let ledger = BudgetLedger::new(&connect(&prefix).await);
    let mut con = raw().await;
    let key = day_key(&prefix, "li-1", DAY);
    let r = |p: &str| req("li-1", p, Some(1_000), None, 400);

    assert_eq!(ledger.renew(&r("a")).await.expect("a").granted_micros, 400);
    assert_eq!(ledger.renew(&r("b")).await.expect("b").granted_micros, 400);
    ledger.release("li-1", DAY, "a", &[(MINUTE, 100), (MINUTE + 1, 50)]).await.expect("release");
    let h = hash(&mut con, &key).await;
    assert_eq!(h.get("leased"), Some(&400), "only b's grant: {h:?}");
    assert_eq!(h.get(&format!("p:{MINUTE}")), Some(&100));
    assert_eq!(h.get(&format!("p:{}", MINUTE + 1)), Some(&50));
    assert!(!h.contains_key("g:a") && !h.contains_key("t:a"));

    // the 250 a did not use are free at once: c gets 1000 - 150 pending - 400 leased = 450, capped
    // at its slice; d the remaining 50
    assert_eq!(ledger.renew(&r("c")).await.expect("c").granted_micros, 400);
    let state = ledger.renew(&r("d")).await.expect("d");
    assert_eq!((state.granted_micros, state.pending_day), (50, 150));

    // releasing again, or without a lease, changes nothing
    ledger.release("li-1", DAY, "a", &[]).await.expect("release again");
    ledger.release("li-1", DAY, "nobody", &[]).await.expect("release without a lease");
    let h = hash(&mut con, &key).await;
    assert_eq!(h.get("leased"), Some(&850));
    let life = hash(&mut con, &life_key(&prefix, "li-1")).await;
    assert_eq!(life.get(&format!("p:{MINUTE}")), Some(&100), "pending is on the lifetime hash too");
    assert!(ttl(&mut con, &key).await > 7 * 86_400, "the day hash expires, 8 days after its last write");
}

#[tokio::test]
async fn book_moves_pending_to_spent_even_before_the_report() {
    let prefix = unique_prefix("budget-book");
    let ledger = BudgetLedger::new(&connect(&prefix).await);
    let mut con = raw().await;
    let key = day_key(&prefix, "li-1", DAY);
    let (m1, m2) = (MINUTE - 2, MINUTE - 1);

    assert_eq!(ledger.renew(&req("li-1", "a", Some(1_000), None, 400)).await.expect("renew").granted_micros, 400);
    let mut r = req("li-1", "a", Some(1_000), None, 400);
    r.used = vec![(m1, 150), (m2, 50)];
    let state = ledger.renew(&r).await.expect("renew");
    assert_eq!((state.granted_micros, state.pending_day, state.spent_day), (400, 200, 0), "topped up again");

    ledger.book("li-1", DAY, m1, 100, 100).await.expect("book");
    let h = hash(&mut con, &key).await;
    assert_eq!((h["spent"], h[&format!("p:{m1}")]), (100, 50));
    ledger.book("li-1", DAY, m1, 50, 50).await.expect("book the rest");
    let h = hash(&mut con, &key).await;
    assert_eq!(h.get("spent"), Some(&150));
    assert!(!h.contains_key(&format!("p:{m1}")), "settled to 0 and removed: {h:?}");
    // A CPC click books spend and settles nothing.
    ledger.book("li-1", DAY, m1, 30, 0).await.expect("book a click");
    let h = hash(&mut con, &key).await;
    assert_eq!(h.get("spent"), Some(&180));
    assert!(!h.contains_key(&format!("p:{m1}")), "a click leaves pending alone: {h:?}");
    // A notice that beats the report of its reservation (minute MINUTE - 3, not reported yet).
    let early = MINUTE - 3;
    ledger
        .book_many(&[
            Booking { line_item_id: "li-1".into(), day: DAY, decided_minute: early, micros: 20, settle_micros: 20 },
            Booking { line_item_id: "li-2".into(), day: DAY, decided_minute: MINUTE, micros: 7, settle_micros: 0 },
        ])
        .await
        .expect("book many");
    let h = hash(&mut con, &key).await;
    assert_eq!(h.get("spent"), Some(&200));
    assert_eq!(h.get(&format!("p:{early}")), Some(&-20), "below zero until the report: {h:?}");
    let mut report = req("li-1", "a", Some(1_000), None, 400);
    report.used = vec![(early, 20)];
    ledger.renew(&report).await.expect("report");
    assert!(!hash(&mut con, &key).await.contains_key(&format!("p:{early}")), "the report brings it back to zero");
    assert_eq!(hash(&mut con, &day_key(&prefix, "li-2", DAY)).await.get("spent"), Some(&7));

    let state = ledger.renew(&req("li-1", "a", Some(1_000), None, 400)).await.expect("renew");
    assert_eq!(
        state,
        LeaseState { granted_micros: 400, spent_day: 200, pending_day: 50, spent_lifetime: 200, pending_lifetime: 50 }
    );
    let life = hash(&mut con, &life_key(&prefix, "li-1")).await;
    assert_eq!((life["spent"], life[&format!("p:{m2}")]), (200, 50));
    assert!(!life.contains_key(&format!("p:{m1}")));

    // an hour later the pending minute m2 left the window: dropped, its room granted again
    let mut later = req("li-1", "a", Some(1_000), None, 1_000);
    later.now_ms = NOW_MS + 60 * 60_000;
    let state = ledger.renew(&later).await.expect("renew");
    assert_eq!((state.granted_micros, state.pending_day, state.pending_lifetime), (800, 0, 0));
    assert!(!hash(&mut con, &key).await.contains_key(&format!("p:{m2}")));

    assert!(matches!(ledger.book("li-1", DAY, MINUTE, -1, 0).await, Err(Error::Invalid(_))));
    assert!(matches!(ledger.book("li-1", DAY, MINUTE, 1, -1).await, Err(Error::Invalid(_))));
}

#[tokio::test]
async fn lifetime_and_daily_budgets_both_limit() {
    let prefix = unique_prefix("budget-both");
    let ledger = BudgetLedger::new(&connect(&prefix).await);
    let mut con = raw().await;
    let on = |li: &str, day: i64, daily: Option<i64>, lifetime: Option<i64>| {
        let mut r = req(li, "a", daily, lifetime, 3_000);
        r.day = day;
        r
    };

    // two days of 2000 spent against a lifetime budget of 5000
    for day in [DAY, DAY + 1] {
        let state = ledger.renew(&on("li-1", day, Some(2_000), Some(5_000))).await.expect("renew");
        assert_eq!(state.granted_micros, 2_000, "the daily budget limits");
        let mut report = on("li-1", day, Some(2_000), Some(5_000));
        report.used = vec![(MINUTE, 2_000)];
        assert_eq!(ledger.renew(&report).await.expect("report").granted_micros, 0, "the day is spent");
        ledger.book("li-1", day, MINUTE, 2_000, 2_000).await.expect("book");
    }
    // the third day: 1000 left in the lifetime budget
    let state = ledger.renew(&on("li-1", DAY + 2, Some(2_000), Some(5_000))).await.expect("renew");
    assert_eq!(
        state,
        LeaseState { granted_micros: 1_000, spent_day: 0, pending_day: 0, spent_lifetime: 4_000, pending_lifetime: 0 }
    );
    let day3 = hash(&mut con, &day_key(&prefix, "li-1", DAY + 2)).await;
    let life = hash(&mut con, &life_key(&prefix, "li-1")).await;
    assert_eq!((day3["g:a"], day3["leased"]), (1_000, 1_000));
    assert_eq!((life["g:a"], life["leased"], life["spent"]), (1_000, 1_000, 4_000));

    // only a lifetime budget: no lease on the day hash
    let state = ledger.renew(&on("li-2", DAY, None, Some(10_000))).await.expect("renew");
    assert_eq!(state.granted_micros, 3_000, "the slice limits");
    assert!(!hash(&mut con, &day_key(&prefix, "li-2", DAY)).await.contains_key("g:a"));
    assert_eq!(hash(&mut con, &life_key(&prefix, "li-2")).await.get("g:a"), Some(&3_000));

    // a budget removed: the grant on that hash is given back
    let state = ledger.renew(&on("li-2", DAY, Some(2_500), None)).await.expect("renew");
    assert_eq!(state.granted_micros, 2_500);
    let life = hash(&mut con, &life_key(&prefix, "li-2")).await;
    assert_eq!((life.get("g:a"), life["leased"]), (None, 0));

    // no budget at all: unlimited, nothing leased
    let state = ledger.renew(&on("li-3", DAY, None, None)).await.expect("renew");
    assert_eq!(state.granted_micros, i64::MAX);
    assert!(!hash(&mut con, &day_key(&prefix, "li-3", DAY)).await.contains_key("g:a"));
}

#[tokio::test]
async fn renew_many_is_one_batch_in_order_and_checks_its_input() {
    let prefix = unique_prefix("budget-many");
    let ledger = BudgetLedger::new(&connect(&prefix).await);
    let states = ledger
        .renew_many(&[
            req("li-1", "a", Some(100), None, 400),
            req("li-2", "a", Some(1_000), None, 400),
            req("li-3", "a", None, Some(250), 400),
        ])
        .await
        .expect("renew many");
    let grants: Vec<i64> = states.iter().map(|s| s.granted_micros).collect();
    assert_eq!(grants, vec![100, 400, 250]);
    assert_eq!(ledger.renew_many(&[]).await.expect("nothing"), Vec::new());

    let mut bad = req("li-1", "a", Some(100), None, 400);
    bad.used = vec![(MINUTE, -5)];
    assert!(matches!(ledger.renew(&bad).await, Err(Error::Invalid(_))));
    for r in [req("{li}", "a", Some(1), None, 1), req("", "a", Some(1), None, 1), req("li-1", "", Some(1), None, 1)] {
        assert!(matches!(ledger.renew_many(&[req("li-9", "a", Some(1), None, 1), r]).await, Err(Error::Invalid(_))));
    }
    let mut con = raw().await;
    let untouched: i64 =
        redis::cmd("EXISTS").arg(day_key(&prefix, "li-9", DAY)).query_async(&mut con).await.expect("EXISTS");
    assert_eq!(untouched, 0, "an invalid request sends nothing, not even the valid ones");
}
