//! frequency: the embedded `FrequencyStore` — per-user impression counters in process memory,
//! sharded, bounded and expiring. No I/O and no global lock; counts are this process's only.
//!
//! Each shard is a `std::sync::Mutex` around a hash map. That is deliberate on this hot path: the
//! critical section is a few hash lookups with no I/O and no await, shards spread contention,
//! and one lock per user makes `try_count` atomic across all of a user's rules.
//!
//! Memory is bounded by `max_entries` counters (one per user × entity × window), split evenly
//! over the shards. When a shard is full it first drops counters whose window has ended, then
//! evicts the eighth of its counters whose windows end soonest. **Eviction can undercount**: an
//! evicted counter restarts at zero, so a user can see more impressions than the cap. Size the
//! store for the active users × caps per user to keep that rare. Lifetime counters never expire
//! but count toward the bound, and are evicted last.

use adp_domain::{CapRule, CapWindow, FrequencyStore};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// In-process frequency counters; see the module docs.
pub struct InProcessFrequency {
    shards: Box<[Mutex<Shard>]>,
    capacity: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct CounterKey {
    user: u64,
    entity: u64,
    window: CapWindow,
}

#[derive(Clone, Copy)]
struct Counter {
    /// The window instance counted (see [`bucket`]); a counter from an older bucket counts 0.
    bucket: i64,
    count: u32,
    /// When `bucket` ends, in Unix seconds; `i64::MAX` for lifetime.
    expires_at: i64,
}

struct Shard {
    counters: HashMap<CounterKey, Counter>,
    capacity: usize,
}

impl InProcessFrequency {
    /// A store holding at most `max_entries` counters (at least 1) over `shards` shards (at least
    /// 1, at most `max_entries`); each shard gets an even part of the bound.
    pub fn new(max_entries: usize, shards: usize) -> InProcessFrequency {
        let capacity = max_entries.max(1);
        let count = shards.clamp(1, capacity);
        let shards = (0..count)
            .map(|i| {
                let capacity = capacity / count + usize::from(i < capacity % count);
                Mutex::new(Shard { counters: HashMap::new(), capacity })
            })
            .collect();
        InProcessFrequency { shards, capacity }
    }

    /// Counters held now, expired ones not yet reclaimed included.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).counters.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most counters the store holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn shard(&self, user_key: u64) -> MutexGuard<'_, Shard> {
        // User keys are usually hashes already; mix anyway so that sequential keys spread.
        let mixed = user_key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        let index = (mixed % self.shards.len() as u64) as usize;
        lock(&self.shards[index])
    }
}

/// The lock, even if a panic elsewhere poisoned it: counters are plain numbers, always valid.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for InProcessFrequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessFrequency")
            .field("shards", &self.shards.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl FrequencyStore for InProcessFrequency {
    fn has_room(&self, user_key: u64, rules: &[CapRule], now_secs: i64) -> bool {
        self.shard(user_key).has_room(user_key, rules, now_secs)
    }

    fn try_count(&self, user_key: u64, rules: &[CapRule], now_secs: i64) -> bool {
        let mut shard = self.shard(user_key);
        if !shard.has_room(user_key, rules, now_secs) {
            return false;
        }
        for (i, rule) in rules.iter().enumerate() {
            // Two rules on the same entity and window share a counter: one impression, one count.
            if rules[..i].iter().any(|r| r.entity == rule.entity && r.window == rule.window) {
                continue;
            }
            shard.count(user_key, rule, rules, now_secs);
        }
        true
    }
}

impl Shard {
    fn has_room(&self, user: u64, rules: &[CapRule], now: i64) -> bool {
        rules.iter().all(|rule| {
            let key = CounterKey { user, entity: rule.entity, window: rule.window };
            let (bucket, _) = CapWindow::instance(rule.window, now);
            let count = self.counters.get(&key).filter(|c| c.bucket == bucket).map_or(0, |c| c.count);
            count < rule.count
        })
    }

    /// Counts one impression under `rule`; `rules` are the whole impression's, spared by eviction.
    fn count(&mut self, user: u64, rule: &CapRule, rules: &[CapRule], now: i64) {
        let key = CounterKey { user, entity: rule.entity, window: rule.window };
        let (bucket, expires_at) = CapWindow::instance(rule.window, now);
        if let Some(counter) = self.counters.get_mut(&key) {
            if counter.bucket == bucket {
                counter.count = counter.count.saturating_add(1);
            } else {
                *counter = Counter { bucket, count: 1, expires_at };
            }
            return;
        }
        if self.counters.len() >= self.capacity {
            self.make_room(now, |k| {
                k.user == user && rules.iter().any(|r| r.entity == k.entity && r.window == k.window)
            });
        }
        // Still full only if this one impression's own counters fill the shard: not counted.
        if self.counters.len() < self.capacity {
            self.counters.insert(key, Counter { bucket, count: 1, expires_at });
        }
    }

    /// Drops expired counters; if that frees nothing, evicts the soonest-expiring eighth of the
    /// shard, sparing counters for which `spared` holds.
    fn make_room(&mut self, now: i64, spared: impl Fn(&CounterKey) -> bool) {
        self.counters.retain(|_, c| c.expires_at > now);
        if self.counters.len() < self.capacity {
            return;
        }
        let mut expiries: Vec<i64> =
            self.counters.iter().filter(|(k, _)| !spared(k)).map(|(_, c)| c.expires_at).collect();
        if expiries.is_empty() {
            return;
        }
        let evict = (self.capacity / 8).clamp(1, expiries.len());
        let (_, &mut cutoff, _) = expiries.select_nth_unstable(evict - 1);
        let mut left = evict;
        self.counters.retain(|k, c| {
            let goes = left > 0 && c.expires_at <= cutoff && !spared(k);
            left -= usize::from(goes);
            !goes
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_SECS: i64 = 86_400;
    const WEEK_SECS: i64 = 7 * DAY_SECS;
    /// The Unix epoch was a Thursday; weeks start on Mondays, three days earlier than the epoch's.
    const WEEK_SHIFT_SECS: i64 = 3 * DAY_SECS;
    use chrono::{Datelike, TimeZone, Utc, Weekday};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    const USER: u64 = 0xDEAD_BEEF;
    const LINE_ITEM: u64 = 11;
    const CAMPAIGN: u64 = 22;

    fn rule(entity: u64, count: u32, window: CapWindow) -> CapRule {
        CapRule { entity, count, window }
    }

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> i64 {
        Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap().timestamp()
    }

    #[test]
    fn cap_allows_exactly_n_then_refuses() {
        let store = InProcessFrequency::new(1_000, 4);
        let rules = [rule(LINE_ITEM, 3, CapWindow::Day)];
        let now = at(2026, 3, 10, 12, 0, 0);
        for i in 0..3 {
            assert!(store.has_room(USER, &rules, now + i));
            assert!(store.try_count(USER, &rules, now + i), "impression {i}");
        }
        assert!(!store.has_room(USER, &rules, now + 3));
        assert!(!store.try_count(USER, &rules, now + 3));
        assert!(!store.try_count(USER, &rules, now + 4));
        assert_eq!(store.len(), 1);

        // a cap of 0 never admits; no rules always do
        assert!(!store.try_count(USER, &[rule(CAMPAIGN, 0, CapWindow::Day)], now));
        assert!(store.try_count(USER, &[], now));
    }

    #[test]
    fn several_windows_interact() {
        let store = InProcessFrequency::new(1_000, 4);
        // at most 1 per minute and 3 per day
        let rules = [rule(LINE_ITEM, 1, CapWindow::Seconds(60)), rule(LINE_ITEM, 3, CapWindow::Day)];
        let day = at(2026, 3, 10, 0, 0, 0);
        assert!(store.try_count(USER, &rules, day + 10));
        assert!(!store.try_count(USER, &rules, day + 59), "same minute");
        assert!(store.try_count(USER, &rules, day + 60), "next minute");
        assert!(!store.try_count(USER, &rules, day + 61));
        assert!(store.try_count(USER, &rules, day + 3_600));
        assert!(!store.try_count(USER, &rules, day + 7_200), "day cap reached though the minute is new");
        assert!(!store.try_count(USER, &rules, day + DAY_SECS - 1));
        assert!(store.try_count(USER, &rules, day + DAY_SECS), "next UTC day");
        assert!(!store.try_count(USER, &rules, day + DAY_SECS + 30), "but the minute cap still holds");

        // a refused impression changes nothing: the minute rule had room, the day rule not
        let store = InProcessFrequency::new(1_000, 4);
        let minute = [rule(LINE_ITEM, 5, CapWindow::Seconds(60))];
        let both = [minute[0], rule(CAMPAIGN, 1, CapWindow::Day)];
        assert!(store.try_count(USER, &both, day));
        for _ in 0..10 {
            assert!(!store.try_count(USER, &both, day + 1));
        }
        for _ in 0..4 {
            assert!(store.try_count(USER, &minute, day + 2));
        }
        assert!(!store.try_count(USER, &minute, day + 3), "only the one counted impression used the minute cap");
    }

    #[test]
    fn rules_on_the_same_counter_count_once() {
        let store = InProcessFrequency::new(1_000, 1);
        let now = at(2026, 3, 10, 9, 0, 0);
        let rules = [rule(LINE_ITEM, 2, CapWindow::Day), rule(LINE_ITEM, 3, CapWindow::Day)];
        assert!(store.try_count(USER, &rules, now));
        assert!(store.try_count(USER, &rules, now));
        assert!(!store.try_count(USER, &rules, now), "the tighter rule binds");
        assert!(store.try_count(USER, &rules[1..], now), "one impression counted once: 2 of 3");
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn windows_roll_over_at_aligned_boundaries() {
        let store = InProcessFrequency::new(1_000, 4);

        // N-second buckets are aligned to the epoch, not to the first impression
        let five_min = [rule(LINE_ITEM, 1, CapWindow::Seconds(300))];
        let boundary = 300 * (at(2026, 3, 10, 12, 0, 0) / 300 + 1);
        assert!(store.try_count(1, &five_min, boundary - 1));
        assert!(store.try_count(1, &five_min, boundary), "a new bucket one second later");
        assert!(!store.try_count(1, &five_min, boundary + 299));

        // UTC days
        let day = [rule(LINE_ITEM, 1, CapWindow::Day)];
        assert!(store.try_count(2, &day, at(2026, 3, 10, 23, 59, 59)));
        assert!(!store.try_count(2, &day, at(2026, 3, 10, 0, 0, 0) + 1));
        assert!(store.try_count(2, &day, at(2026, 3, 11, 0, 0, 0)));

        // weeks start on Monday 00:00 UTC
        let monday = at(2026, 3, 9, 0, 0, 0);
        assert_eq!(Utc.timestamp_opt(monday, 0).unwrap().weekday(), Weekday::Mon);
        let week = [rule(LINE_ITEM, 1, CapWindow::Week)];
        assert!(store.try_count(3, &week, monday - 1), "Sunday 23:59:59");
        assert!(store.try_count(3, &week, monday), "Monday 00:00:00: a new week");
        assert!(!store.try_count(3, &week, at(2026, 3, 12, 0, 0, 0)), "Thursday is the same week");
        assert!(!store.try_count(3, &week, monday + WEEK_SECS - 1), "up to Sunday 23:59:59");
        assert!(store.try_count(3, &week, monday + WEEK_SECS));

        // lifetime never rolls over
        let lifetime = [rule(LINE_ITEM, 1, CapWindow::Lifetime)];
        assert!(store.try_count(4, &lifetime, 0));
        assert!(!store.try_count(4, &lifetime, at(2099, 1, 1, 0, 0, 0)));
    }

    #[test]
    fn buckets_are_aligned_in_utc() {
        assert_eq!(CapWindow::instance(CapWindow::Seconds(60), 119), (1, 120));
        assert_eq!(CapWindow::instance(CapWindow::Seconds(60), -1), (-1, 0));
        assert_eq!(CapWindow::instance(CapWindow::Day, at(2026, 3, 10, 13, 0, 0)).1, at(2026, 3, 11, 0, 0, 0));
        // the epoch (Thursday) lies in the week from Monday 1969-12-29 to Monday 1970-01-05
        assert_eq!(CapWindow::instance(CapWindow::Week, 0), (0, at(1970, 1, 5, 0, 0, 0)));
        assert_eq!(CapWindow::instance(CapWindow::Week, at(1969, 12, 29, 0, 0, 0)), (0, at(1970, 1, 5, 0, 0, 0)));
        assert_eq!(CapWindow::instance(CapWindow::Week, at(1969, 12, 28, 23, 59, 59)).0, -1);
        assert_eq!(CapWindow::instance(CapWindow::Week, at(2026, 3, 15, 23, 59, 59)).1, at(2026, 3, 16, 0, 0, 0));
        assert_eq!(CapWindow::instance(CapWindow::Lifetime, i64::MIN), (0, i64::MAX));
        // extreme clocks do not overflow
        assert_eq!(CapWindow::instance(CapWindow::Week, i64::MAX).1, i64::MAX - WEEK_SHIFT_SECS);
        let _ = CapWindow::instance(CapWindow::Seconds(0), i64::MIN);
    }

    #[test]
    fn users_and_entities_are_independent() {
        let store = InProcessFrequency::new(1_000, 4);
        let now = at(2026, 3, 10, 12, 0, 0);
        let li = [rule(LINE_ITEM, 1, CapWindow::Day)];
        let cmp = [rule(CAMPAIGN, 1, CapWindow::Day)];
        assert!(store.try_count(USER, &li, now));
        assert!(!store.try_count(USER, &li, now));
        assert!(store.try_count(USER, &cmp, now), "another entity");
        assert!(store.try_count(USER + 1, &li, now), "another user");
        assert!(store.try_count(USER, &[rule(LINE_ITEM, 1, CapWindow::Week)], now), "another window");
        assert!(!store.try_count(USER + 1, &li, now));
        assert_eq!(store.len(), 4);
    }

    #[test]
    fn memory_stays_bounded_under_many_users() {
        let store = InProcessFrequency::new(1_000, 8);
        assert_eq!(store.capacity(), 1_000);
        let now = at(2026, 3, 10, 12, 0, 0);
        let rules = [rule(LINE_ITEM, 1, CapWindow::Day), rule(CAMPAIGN, 5, CapWindow::Week)];
        for user in 0..20_000 {
            assert!(store.try_count(user, &rules, now + (user as i64 % 100)));
            assert!(store.len() <= store.capacity());
        }
        assert!(store.len() > 800, "eviction frees an eighth at a time: {}", store.len());

        // odd splits keep the exact bound; silly arguments are clamped
        assert_eq!(InProcessFrequency::new(1_003, 8).capacity(), 1_003);
        assert_eq!(InProcessFrequency::new(0, 0).capacity(), 1);
        let tiny = InProcessFrequency::new(3, 16);
        for user in 0..100 {
            tiny.try_count(user, &rules[..1], now);
        }
        assert!(tiny.len() <= 3);
    }

    #[test]
    fn expired_counters_are_reclaimed_before_live_ones() {
        let store = InProcessFrequency::new(100, 1);
        let start = at(2026, 3, 10, 12, 0, 0) / 60 * 60;
        let lifetime = [rule(LINE_ITEM, 1, CapWindow::Lifetime)];
        let minute = [rule(LINE_ITEM, 1, CapWindow::Seconds(60))];
        for user in 0..50 {
            assert!(store.try_count(user, &lifetime, start));
        }
        for user in 50..100 {
            assert!(store.try_count(user, &minute, start));
        }
        assert_eq!(store.len(), 100);

        // two minutes later the minute counters are dead: they make the room
        let later = start + 120;
        for user in 100..150 {
            assert!(store.try_count(user, &lifetime, later));
        }
        assert_eq!(store.len(), 100);
        for user in 0..50 {
            assert!(!store.has_room(user, &lifetime, later), "user {user} kept their lifetime count");
        }

        // nothing expired: the soonest-expiring go first (day before week before lifetime)
        let store = InProcessFrequency::new(80, 1);
        let now = at(2026, 3, 10, 12, 0, 0);
        let day = [rule(CAMPAIGN, 1, CapWindow::Day)];
        let week = [rule(CAMPAIGN, 1, CapWindow::Week)];
        for user in 0..40 {
            assert!(store.try_count(user, &lifetime, now));
        }
        for user in 40..60 {
            assert!(store.try_count(user, &week, now));
        }
        for user in 60..80 {
            assert!(store.try_count(user, &day, now));
        }
        assert!(store.try_count(1_000, &lifetime, now));
        assert!(store.len() <= 80);
        assert!((0..40).all(|user| !store.has_room(user, &lifetime, now)), "lifetime counters survive");
        assert!((40..60).all(|user| !store.has_room(user, &week, now)), "week counters survive");
        let evicted = (60..80).filter(|&user| store.has_room(user, &day, now)).count();
        assert_eq!(evicted, 10, "an eighth of 80, all from the day counters");
    }

    #[test]
    fn an_impression_never_evicts_its_own_counters() {
        // one shard with room for two: a user capped on two rules, then a third rule arrives
        let store = InProcessFrequency::new(2, 1);
        let now = at(2026, 3, 10, 12, 0, 0);
        let rules = [rule(LINE_ITEM, 1, CapWindow::Seconds(60)), rule(CAMPAIGN, 2, CapWindow::Day)];
        assert!(store.try_count(USER, &rules, now));
        let three = [rules[0], rules[1], rule(99, 5, CapWindow::Week)];
        assert!(!store.try_count(USER, &three, now + 1), "the minute cap holds");
        assert!(store.try_count(USER, &three, now + 60));
        // the week counter found no room, but the two older ones were kept and counted
        assert!(!store.has_room(USER, &rules[1..], now + 120), "day cap 2 reached");
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn concurrent_try_count_admits_exactly_the_cap() {
        let store = Arc::new(InProcessFrequency::new(10_000, 16));
        let rules = [rule(LINE_ITEM, 250, CapWindow::Day), rule(CAMPAIGN, 1_000, CapWindow::Week)];
        let now = at(2026, 3, 10, 12, 0, 0);
        let admitted = AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        if store.try_count(USER, &rules, now) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                        // other users in other shards at the same time
                        store.try_count(USER ^ 0x5555, &rules, now);
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 250);
        assert!(!store.has_room(USER, &rules, now));
        let store: Arc<dyn FrequencyStore> = store;
        assert!(store.has_room(USER, &[rule(CAMPAIGN, 1_000, CapWindow::Week)], now), "week counted 250 of 1000");
    }
}
