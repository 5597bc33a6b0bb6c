//! Frequency caps against a real Redis server: load and commit, exact across processes.

mod common;

use adp_domain::{CapRule, CapWindow, FrequencyStore};
use adp_dragonfly::{Error, FrequencyCaps};
use common::{connect, hash, raw, ttl, unique_prefix};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// 2026-03-10 00:00:00 UTC.
const DAY: i64 = 1_773_100_800;
const DAY_NO: i64 = DAY / 86_400;
const USER: u64 = 0xDEAD_BEEF;
const LINE_ITEM: u64 = 0x11;
const CAMPAIGN: u64 = 0x22;

fn rule(entity: u64, count: u32, window: CapWindow) -> CapRule {
    CapRule { entity, count, window }
}

fn user_key(prefix: &str, user: u64) -> String {
    format!("{prefix}:fc:{{{user:016x}}}")
}

/// One ad request: load, decide (count locally), commit; whether the impression counted.
async fn serve(caps: &FrequencyCaps, user: u64, rules: &[CapRule], now: i64) -> bool {
    let counts = caps.load(user, rules, now).await.expect("load");
    if !counts.try_count(user, rules, now) {
        return false;
    }
    let committed = caps.commit(user, &counts, now).await.expect("commit");
    assert_eq!(committed.len(), 1);
    committed[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_of_n_holds_exactly_across_racing_processes() {
    let prefix = unique_prefix("caps-race");
    // three processes, each its own connection
    let mut processes = Vec::new();
    for _ in 0..3 {
        processes.push(FrequencyCaps::new(&connect(&prefix).await));
    }
    let rules = [rule(LINE_ITEM, 7, CapWindow::Day), rule(CAMPAIGN, 20, CapWindow::Week)];
    let now = DAY + 3_600;
    let admitted = Arc::new(AtomicU32::new(0));
    let refused_at_commit = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for task in 0..30 {
        let caps = processes[task % 3].clone();
        let admitted = admitted.clone();
        let refused_at_commit = refused_at_commit.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let counts = caps.load(USER, &rules, now).await.expect("load");
                if counts.try_count(USER, &rules, now) {
                    match caps.commit(USER, &counts, now).await.expect("commit").as_slice() {
                        [true] => admitted.fetch_add(1, Ordering::Relaxed),
                        [false] => refused_at_commit.fetch_add(1, Ordering::Relaxed),
                        other => panic!("{other:?}"),
                    };
                }
                // other users at the same time
                serve(&caps, USER ^ 0x5555, &rules, now).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 7);
    let mut con = raw().await;
    let stored = hash(&mut con, &user_key(&prefix, USER)).await;
    let week_no = (now + 3 * 86_400) / (7 * 86_400);
    assert_eq!(stored.get(&format!("11:d:{DAY_NO}")), Some(&7), "{stored:?}");
    assert_eq!(stored.get(&format!("22:w:{week_no}")), Some(&7), "{stored:?}");
    assert_eq!(stored.len(), 2);
    let other = hash(&mut con, &user_key(&prefix, USER ^ 0x5555)).await;
    assert_eq!(other.get(&format!("11:d:{DAY_NO}")), Some(&7));
    println!("refused at commit after a stale load: {}", refused_at_commit.load(Ordering::Relaxed));
}

#[tokio::test]
async fn commit_rechecks_every_impression_on_the_server() {
    let prefix = unique_prefix("caps-recheck");
    let a = FrequencyCaps::new(&connect(&prefix).await);
    let b = FrequencyCaps::new(&connect(&prefix).await);
    let li = [rule(LINE_ITEM, 3, CapWindow::Day)];
    let cmp = [rule(CAMPAIGN, 1, CapWindow::Day)];
    let both = [li[0], cmp[0]];
    let now = DAY + 100;

    // process a loads, then b fills the campaign cap before a commits
    let stale = a.load(USER, &both, now).await.expect("load");
    assert!(stale.try_count(USER, &li, now), "two ad slots in one request: the line item");
    assert!(stale.try_count(USER, &cmp, now), "and the campaign");
    assert!(!stale.try_count(USER, &cmp, now), "the campaign cap of 1 holds locally");
    assert_eq!(stale.pending(), 2);
    assert!(serve(&b, USER, &cmp, now).await);
    assert_eq!(a.commit(USER, &stale, now).await.expect("commit"), vec![true, false]);
    assert_eq!(stale.pending(), 0, "commit takes the pending impressions");
    assert_eq!(a.commit(USER, &stale, now).await.expect("commit again"), Vec::<bool>::new());

    let mut con = raw().await;
    let stored = hash(&mut con, &user_key(&prefix, USER)).await;
    assert_eq!(stored.get(&format!("11:d:{DAY_NO}")), Some(&1));
    assert_eq!(stored.get(&format!("22:d:{DAY_NO}")), Some(&1), "the refused impression counted nothing");

    // an impression is all or nothing: the campaign is full, so the line item is not counted
    let loaded = a.load(USER, &both, now).await.expect("load");
    assert_eq!(loaded.count(&li[0], now), 1);
    assert_eq!(loaded.count(&cmp[0], now), 1);
    assert!(!loaded.try_count(USER, &both, now));
    let fresh = adp_dragonfly::CapCounts::new(USER);
    assert!(fresh.try_count(USER, &both, now), "empty counts admit");
    assert_eq!(a.commit(USER, &fresh, now).await.expect("commit"), vec![false]);
    assert_eq!(hash(&mut con, &user_key(&prefix, USER)).await.get(&format!("11:d:{DAY_NO}")), Some(&1));

    // counts are for one user
    assert!(matches!(a.commit(USER + 1, &loaded, now).await, Err(Error::Invalid(_))));
    assert!(!loaded.has_room(USER + 1, &li, now));
}

#[tokio::test]
async fn several_windows_at_once() {
    let prefix = unique_prefix("caps-windows");
    let caps = FrequencyCaps::new(&connect(&prefix).await);
    // at most 1 per minute and 3 per day on the line item, 4 per week on the campaign
    let rules = [
        rule(LINE_ITEM, 1, CapWindow::Seconds(60)),
        rule(LINE_ITEM, 3, CapWindow::Day),
        rule(CAMPAIGN, 4, CapWindow::Week),
    ];
    assert!(serve(&caps, USER, &rules, DAY + 10).await);
    assert!(!serve(&caps, USER, &rules, DAY + 59).await, "same minute");
    assert!(serve(&caps, USER, &rules, DAY + 60).await, "next minute");
    assert!(!serve(&caps, USER, &rules, DAY + 61).await);
    assert!(serve(&caps, USER, &rules, DAY + 3_600).await);
    assert!(!serve(&caps, USER, &rules, DAY + 7_200).await, "day cap reached though the minute is new");
    assert!(serve(&caps, USER, &rules, DAY + 86_400).await, "next UTC day");
    assert!(!serve(&caps, USER, &rules, DAY + 86_400 + 30).await, "but the minute cap still holds");
    assert!(!serve(&caps, USER, &rules, DAY + 86_400 + 120).await, "week cap of 4 reached");

    let mut con = raw().await;
    let stored = hash(&mut con, &user_key(&prefix, USER)).await;
    let week_no = (DAY + 3 * 86_400) / (7 * 86_400);
    assert_eq!(stored.get(&format!("11:d:{DAY_NO}")), Some(&3));
    assert_eq!(stored.get(&format!("11:d:{}", DAY_NO + 1)), Some(&1));
    assert_eq!(stored.get(&format!("22:w:{week_no}")), Some(&4));
    assert_eq!(stored.get(&format!("11:s60:{}", (DAY + 60) / 60)), Some(&1));
    assert_eq!(stored.len(), 3 + 4, "day, day + 1, week and four minutes");
}

#[tokio::test]
async fn seconds_window_rolls_over_at_aligned_boundaries() {
    let prefix = unique_prefix("caps-rollover");
    let caps = FrequencyCaps::new(&connect(&prefix).await);
    let rules = [rule(LINE_ITEM, 2, CapWindow::Seconds(10))];
    let t0 = DAY + 1_000; // a multiple of 10
    assert!(serve(&caps, USER, &rules, t0).await);
    assert!(serve(&caps, USER, &rules, t0 + 3).await);
    assert!(!serve(&caps, USER, &rules, t0 + 9).await, "2 in this 10 s bucket");
    assert!(serve(&caps, USER, &rules, t0 + 10).await, "a new bucket at the boundary");
    assert!(serve(&caps, USER, &rules, t0 + 19).await);
    assert!(!serve(&caps, USER, &rules, t0 + 19).await);
    assert!(serve(&caps, USER, &rules, t0 + 25).await);

    let mut con = raw().await;
    let stored = hash(&mut con, &user_key(&prefix, USER)).await;
    let b = t0 / 10;
    assert_eq!(stored.get(&format!("11:s10:{b}")), Some(&2));
    assert_eq!(stored.get(&format!("11:s10:{}", b + 1)), Some(&2));
    assert_eq!(stored.get(&format!("11:s10:{}", b + 2)), Some(&1));
    // the first commit (at t0, its bucket ending at t0 + 10) set 10 s + 60 s grace; the later ones
    // (at t0 + 10: 10 s more, at t0 + 25: 5 s more) asked for no more, and a TTL is never lowered
    let left = ttl(&mut con, &user_key(&prefix, USER)).await;
    assert!((68..=70).contains(&left), "ttl {left}");
}

#[tokio::test]
async fn ttl_is_set_to_the_longest_window_and_never_lowered() {
    let prefix = unique_prefix("caps-ttl");
    let df = connect(&prefix).await;
    let caps = FrequencyCaps::new(&df).with_lifetime_ttl(Duration::from_secs(5_000_000));
    let mut con = raw().await;
    let key = user_key(&prefix, USER);
    let now = DAY + 3_600;

    // nothing counted, nothing written
    let refused = caps.load(USER, &[], now).await.expect("load");
    assert!(!refused.try_count(USER, &[rule(1, 0, CapWindow::Day)], now));
    assert_eq!(caps.commit(USER, &refused, now).await.expect("commit"), Vec::<bool>::new());
    assert_eq!(ttl(&mut con, &key).await, -2, "no key");

    assert!(serve(&caps, USER, &[rule(LINE_ITEM, 5, CapWindow::Day)], now).await);
    let day_ttl = 86_400 - 3_600 + 60;
    let left = ttl(&mut con, &key).await;
    assert!((day_ttl - 2..=day_ttl).contains(&left), "ttl {left}, want {day_ttl}");

    assert!(serve(&caps, USER, &[rule(LINE_ITEM, 5, CapWindow::Seconds(60))], now).await);
    assert!(ttl(&mut con, &key).await >= day_ttl - 2, "a shorter window does not lower the TTL");

    assert!(serve(&caps, USER, &[rule(CAMPAIGN, 5, CapWindow::Lifetime)], now).await);
    let left = ttl(&mut con, &key).await;
    assert!((4_999_998..=5_000_000).contains(&left), "lifetime ttl {left}");

    // the default lifetime TTL is 400 days
    let default_caps = FrequencyCaps::new(&df);
    assert!(serve(&default_caps, USER + 1, &[rule(CAMPAIGN, 5, CapWindow::Lifetime)], now).await);
    let left = ttl(&mut con, &user_key(&prefix, USER + 1)).await;
    assert!((400 * 86_400 - 2..=400 * 86_400).contains(&left), "lifetime ttl {left}");

    // a week cap: until next Monday 00:00 UTC (2026-03-16) + grace
    assert!(serve(&caps, USER + 2, &[rule(CAMPAIGN, 5, CapWindow::Week)], now).await);
    let week_ttl = 6 * 86_400 - 3_600 + 60;
    let left = ttl(&mut con, &user_key(&prefix, USER + 2)).await;
    assert!((week_ttl - 2..=week_ttl).contains(&left), "week ttl {left}, want {week_ttl}");
}

#[tokio::test]
async fn scripts_are_loaded_again_after_a_script_flush() {
    let prefix = unique_prefix("caps-noscript");
    let caps = FrequencyCaps::new(&connect(&prefix).await);
    let rules = [rule(LINE_ITEM, 2, CapWindow::Day)];
    assert!(serve(&caps, USER, &rules, DAY).await);
    let mut con = raw().await;
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut con).await.expect("SCRIPT FLUSH");
    assert!(serve(&caps, USER, &rules, DAY).await, "EVALSHA fails with NOSCRIPT, then loads and runs once");
    assert!(!serve(&caps, USER, &rules, DAY).await);
    assert_eq!(hash(&mut con, &user_key(&prefix, USER)).await.get(&format!("11:d:{DAY_NO}")), Some(&2));
}

#[tokio::test]
async fn commit_and_read_leaves_a_snapshot_that_decides_the_next_request_without_a_read() {
    let prefix = unique_prefix("caps-snapshot");
    let (a, b) = (FrequencyCaps::new(&connect(&prefix).await), FrequencyCaps::new(&connect(&prefix).await));
    let rules = [rule(LINE_ITEM, 2, CapWindow::Day)];
    let other = [rule(CAMPAIGN, 5, CapWindow::Week)];
    let now = DAY + 60;
    // Process a: a cold user counts optimistically; the commit reads back both rules.
    let counts = adp_dragonfly::caps::CapCounts::new(USER);
    assert!(counts.try_count(USER, &rules, now));
    let (ok, snap) = a.commit_and_read(USER, &counts, &[rules[0], other[0]], now).await.expect("commit");
    assert_eq!(ok, vec![true]);
    assert_eq!(snap.len(), 2, "both counters read back");
    let from_snap = adp_dragonfly::caps::CapCounts::from_snapshot(USER, &snap);
    assert_eq!((from_snap.count(&rules[0], now), from_snap.count(&other[0], now)), (1, 0));
    // Process b counts the last allowed impression meanwhile: a's snapshot is now stale.
    assert!(serve(&b, USER, &rules, now).await);
    // a decides on its stale snapshot (room for one more) and commits: the server refuses.
    let stale = adp_dragonfly::caps::CapCounts::from_snapshot(USER, &snap);
    assert!(stale.try_count(USER, &rules, now), "the stale snapshot says there is room");
    let (ok, fresh) = a.commit_and_read(USER, &stale, &rules, now).await.expect("commit");
    assert_eq!(ok, vec![false], "a stale snapshot never exceeds the cap");
    let merged = snap.merged(&fresh);
    let next = adp_dragonfly::caps::CapCounts::from_snapshot(USER, &merged);
    assert!(!next.has_room(USER, &rules, now), "the read-back counter shows the cap full");
    assert_eq!(hash(&mut raw().await, &user_key(&prefix, USER)).await.values().copied().max(), Some(2));
}
