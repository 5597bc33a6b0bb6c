//! caps: per-user frequency caps shared by every serving process. One round trip reads a user's
//! counters before the decision ([`FrequencyCaps::load`]), the decision counts against that
//! in-memory copy ([`CapCounts`], a synchronous [`FrequencyStore`]), and one round trip commits
//! what it counted ([`FrequencyCaps::commit`]), atomically re-checking every cap on the server.
//!
//! Storage: one hash per user, `{prefix}:fc:{<user key, 16 hex digits>}`, one field per counter
//! `<entity hex>:<window code>:<bucket>` (window codes `s<N>`, `d`, `w`, `l`; the bucket is the
//! number of the window instance, 0 for lifetime), the value the count. A field names its bucket,
//! so counters of ended windows are simply never read again; nothing deletes them, so **the hash
//! only grows while its TTL keeps being refreshed**. Every commit that counts something raises the
//! key's TTL (never lowers it) to the end of the longest window it counted in plus
//! [`TTL_GRACE_SECS`], or to the lifetime TTL (default 400 days) for lifetime caps.

use crate::client::{array, int, opt_int};
use crate::{keys, Dragonfly, Error};
use adp_domain::{CapRule, CapWindow, FrequencyStore};
use redis::Script;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

const DAY_SECS: i64 = 86_400;
/// Seconds a user's hash outlives the end of its longest window, for clocks a little apart.
pub const TTL_GRACE_SECS: i64 = 60;
/// The default TTL of a hash holding lifetime counters: 400 days.
pub const DEFAULT_LIFETIME_TTL: Duration = Duration::from_secs(400 * DAY_SECS as u64);

const COMMIT_LUA: &str = include_str!("lua/caps_commit.lua");

/// Frequency caps on Dragonfly; see the module docs.
#[derive(Debug, Clone)]
pub struct FrequencyCaps {
    df: Dragonfly,
    lifetime_ttl_secs: i64,
    commit: Script,
}

impl FrequencyCaps {
    pub fn new(df: &Dragonfly) -> FrequencyCaps {
        FrequencyCaps {
            df: df.clone(),
            lifetime_ttl_secs: DEFAULT_LIFETIME_TTL.as_secs() as i64,
            commit: Script::new(COMMIT_LUA),
        }
    }

    /// How long a hash holding lifetime counters lives after its last commit (at least 1 s).
    pub fn with_lifetime_ttl(mut self, ttl: Duration) -> FrequencyCaps {
        self.lifetime_ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        self
    }

    /// Reads the counters of `rules` for `user_key` at `now_secs` (one HMGET of exactly those
    /// fields, none when `rules` is empty). Rules not loaded here count as 0 in the result.
    pub async fn load(&self, user_key: u64, rules: &[CapRule], now_secs: i64) -> Result<CapCounts, Error> {
        let counts = CapCounts::new(user_key);
        let mut counters: Vec<Counter> = Vec::with_capacity(rules.len());
        for rule in rules {
            let (counter, _) = Counter::of(rule, now_secs);
            if !counters.contains(&counter) {
                counters.push(counter);
            }
        }
        if counters.is_empty() {
            return Ok(counts);
        }
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(keys::caps(self.df.prefix(), user_key));
        for counter in &counters {
            cmd.arg(counter.field());
        }
        let reply: redis::Value = cmd.query_async(&mut self.df.connection()).await?;
        let values = array(reply, counters.len())?;
        {
            let mut tally = counts.lock();
            for (counter, value) in counters.into_iter().zip(&values) {
                match opt_int(value)? {
                    None => {}
                    Some(n) if n < 0 => return Err(Error::Protocol(format!("negative cap counter {n}"))),
                    Some(n) => {
                        tally.counts.insert(counter, u32::try_from(n).unwrap_or(u32::MAX));
                    }
                }
            }
        }
        Ok(counts)
    }

    /// Commits the impressions `counts` counted (its pending list, which this takes: a second
    /// commit sends nothing) in one script call: for each impression in order, if every one of its
    /// counters is still below its cap on the server, all are incremented, else none. Returns one
    /// bool per impression, true when it was counted. With concurrent commits for one user from
    /// any number of processes, a cap of N admits at most N impressions per window.
    ///
    /// On an error the impressions may or may not have been counted; they are not kept for a
    /// retry.
    pub async fn commit(&self, user_key: u64, counts: &CapCounts, now_secs: i64) -> Result<Vec<bool>, Error> {
        self.commit_and_read(user_key, counts, &[], now_secs).await.map(|(outcomes, _)| outcomes)
    }

    /// [`FrequencyCaps::commit`], and in the same script call reads back the counters of
    /// `read_rules` as they are after it: the caller keeps them as the user's [`CapSnapshot`]
    /// and decides the next request against it without a read first, so a request costs at most
    /// one round trip (this one, and only when something capped won). A snapshot may be stale
    /// (another process counted since): the commit re-checks every cap on the server, so a stale
    /// snapshot can cost a fill, never exceed a cap.
    pub async fn commit_and_read(
        &self,
        user_key: u64,
        counts: &CapCounts,
        read_rules: &[CapRule],
        now_secs: i64,
    ) -> Result<(Vec<bool>, CapSnapshot), Error> {
        if counts.user_key != user_key {
            return Err(Error::Invalid(format!(
                "counts loaded for user {:016x}, committed for {user_key:016x}",
                counts.user_key
            )));
        }
        let pending = std::mem::take(&mut counts.lock().pending);
        let mut reads: Vec<Counter> = Vec::with_capacity(read_rules.len());
        for rule in read_rules {
            let (counter, _) = Counter::of(rule, now_secs);
            if !reads.contains(&counter) {
                reads.push(counter);
            }
        }
        if pending.iter().all(|imp| imp.counters.is_empty()) && reads.is_empty() {
            return Ok((vec![true; pending.len()], CapSnapshot::default()));
        }
        let ttl = pending
            .iter()
            .flat_map(|imp| &imp.counters)
            .map(|c| match c.counter.window {
                CapWindow::Lifetime => self.lifetime_ttl_secs,
                _ => c.end.saturating_sub(now_secs).saturating_add(TTL_GRACE_SECS).min(self.lifetime_ttl_secs),
            })
            .max()
            .unwrap_or(1)
            .max(1);
        let mut call = self.commit.prepare_invoke();
        call.key(keys::caps(self.df.prefix(), user_key)).arg(ttl).arg(pending.len());
        for imp in &pending {
            call.arg(imp.counters.len());
            for c in &imp.counters {
                call.arg(c.counter.field()).arg(c.limit);
            }
        }
        call.arg(reads.len());
        for counter in &reads {
            call.arg(counter.field());
        }
        let reply = self.df.run_scripts(&self.commit, std::slice::from_ref(&call)).await?.pop();
        let values = array(reply.unwrap_or(redis::Value::Nil), pending.len() + reads.len())?;
        let mut outcomes = Vec::with_capacity(pending.len());
        for v in &values[..pending.len()] {
            outcomes.push(match int(v)? {
                0 => false,
                1 => true,
                n => return Err(Error::Protocol(format!("cap commit answered {n}"))),
            });
        }
        let mut snapshot = CapSnapshot::default();
        for (counter, v) in reads.into_iter().zip(&values[pending.len()..]) {
            let n = int(v)?;
            if n < 0 {
                return Err(Error::Protocol(format!("negative cap counter {n}")));
            }
            snapshot.counts.insert(counter, u32::try_from(n).unwrap_or(u32::MAX));
        }
        Ok((outcomes, snapshot))
    }
}

/// A user's counters as last read back from the server ([`FrequencyCaps::commit_and_read`]),
/// kept by a serving process between requests. Counters name their window instance, so the
/// ones of ended windows are simply never matched again.
#[derive(Debug, Clone, Default)]
pub struct CapSnapshot {
    counts: HashMap<Counter, u32>,
}

impl CapSnapshot {
    /// This snapshot with `newer`'s counters replacing its own.
    pub fn merged(&self, newer: &CapSnapshot) -> CapSnapshot {
        let mut counts = self.counts.clone();
        counts.extend(newer.counts.iter().map(|(c, n)| (*c, *n)));
        CapSnapshot { counts }
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// One counter: an entity in one window instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Counter {
    entity: u64,
    window: CapWindow,
    bucket: i64,
}

impl Counter {
    /// The counter `rule` counts in at `now`, and when its window ends.
    fn of(rule: &CapRule, now: i64) -> (Counter, i64) {
        let (bucket, end) = CapWindow::instance(rule.window, now);
        (Counter { entity: rule.entity, window: rule.window, bucket }, end)
    }

    /// The hash field: `<entity hex>:<window code>:<bucket>`.
    fn field(&self) -> String {
        let e = self.entity;
        let b = self.bucket;
        match self.window {
            CapWindow::Seconds(n) => format!("{e:x}:s{n}:{b}"),
            CapWindow::Day => format!("{e:x}:d:{b}"),
            CapWindow::Week => format!("{e:x}:w:{b}"),
            CapWindow::Lifetime => format!("{e:x}:l:{b}"),
        }
    }
}

/// A counter one impression counts in, with its cap and the end of its window.
#[derive(Debug, Clone, Copy)]
struct Counted {
    counter: Counter,
    limit: u32,
    end: i64,
}

/// One impression counted locally, waiting for [`FrequencyCaps::commit`].
#[derive(Debug, Clone)]
struct Impression {
    counters: Vec<Counted>,
}

#[derive(Debug, Default)]
struct Tally {
    counts: HashMap<Counter, u32>,
    pending: Vec<Impression>,
}

/// One user's counters as loaded for one request, plus what the request counted since. A
/// synchronous [`FrequencyStore`] for the engine:
///
/// - it answers only for the user it was loaded for: for any other user it has no room;
/// - a counter that was not loaded (its rule was not passed to [`FrequencyCaps::load`], or the
///   window rolled over since) counts as 0;
/// - `try_count` counts in memory and records the impression for [`FrequencyCaps::commit`]; rules
///   on the same entity and window count once per impression and the tightest cap binds, as in
///   the embedded store.
#[derive(Debug)]
pub struct CapCounts {
    user_key: u64,
    // Never contended: one request owns it. A std lock only because the trait takes `&self`.
    tally: Mutex<Tally>,
}

impl CapCounts {
    /// Counts for `user_key` with every counter at 0 (e.g. when Dragonfly cannot be read and the
    /// caller chooses to serve anyway).
    pub fn new(user_key: u64) -> CapCounts {
        CapCounts { user_key, tally: Mutex::new(Tally::default()) }
    }

    /// Counts for `user_key` starting from a snapshot read back earlier.
    pub fn from_snapshot(user_key: u64, snapshot: &CapSnapshot) -> CapCounts {
        CapCounts { user_key, tally: Mutex::new(Tally { counts: snapshot.counts.clone(), pending: Vec::new() }) }
    }

    pub fn user_key(&self) -> u64 {
        self.user_key
    }

    /// The count of `rule`'s counter at `now_secs`: loaded plus counted here.
    pub fn count(&self, rule: &CapRule, now_secs: i64) -> u32 {
        let (counter, _) = Counter::of(rule, now_secs);
        self.lock().counts.get(&counter).copied().unwrap_or(0)
    }

    /// Impressions counted here and not yet committed.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        // Counts are plain numbers, valid even if a panic elsewhere poisoned the lock.
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The distinct counters of `rules` at `now`, each with its tightest cap.
    fn counted(rules: &[CapRule], now: i64) -> Vec<Counted> {
        let mut out: Vec<Counted> = Vec::with_capacity(rules.len());
        for rule in rules {
            let (counter, end) = Counter::of(rule, now);
            match out.iter_mut().find(|c| c.counter == counter) {
                Some(c) => c.limit = c.limit.min(rule.count),
                None => out.push(Counted { counter, limit: rule.count, end }),
            }
        }
        out
    }
}

impl Tally {
    fn has_room(&self, counted: &[Counted]) -> bool {
        counted.iter().all(|c| self.counts.get(&c.counter).copied().unwrap_or(0) < c.limit)
    }
}

impl FrequencyStore for CapCounts {
    fn has_room(&self, user_key: u64, rules: &[CapRule], now_secs: i64) -> bool {
        if user_key != self.user_key {
            tracing::debug!(user_key, loaded = self.user_key, "cap counts asked about another user");
            return false;
        }
        self.lock().has_room(&CapCounts::counted(rules, now_secs))
    }

    fn try_count(&self, user_key: u64, rules: &[CapRule], now_secs: i64) -> bool {
        if user_key != self.user_key {
            tracing::debug!(user_key, loaded = self.user_key, "cap counts asked about another user");
            return false;
        }
        let counted = CapCounts::counted(rules, now_secs);
        let mut tally = self.lock();
        if !tally.has_room(&counted) {
            return false;
        }
        for c in &counted {
            let n = tally.counts.entry(c.counter).or_insert(0);
            *n = n.saturating_add(1);
        }
        tally.pending.push(Impression { counters: counted });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: u64 = 0xDEAD_BEEF;
    /// 2026-03-10 00:00:00 UTC, a Tuesday.
    const DAY: i64 = 1_773_100_800;

    fn rule(entity: u64, count: u32, window: CapWindow) -> CapRule {
        CapRule { entity, count, window }
    }

    #[test]
    fn fields_name_entity_window_and_bucket() {
        let field = |r: CapRule, now| Counter::of(&r, now).0.field();
        assert_eq!(field(rule(0xab, 1, CapWindow::Seconds(60)), 119), "ab:s60:1");
        assert_eq!(field(rule(0xab, 1, CapWindow::Day), DAY), format!("ab:d:{}", DAY / DAY_SECS));
        assert_eq!(field(rule(0xab, 1, CapWindow::Week), 0), "ab:w:0");
        assert_eq!(field(rule(u64::MAX, 1, CapWindow::Lifetime), DAY), "ffffffffffffffff:l:0");
    }

    #[test]
    fn local_counts_honour_caps_and_record_impressions() {
        let counts = CapCounts::new(USER);
        let rules = [rule(1, 2, CapWindow::Day), rule(1, 3, CapWindow::Day), rule(2, 5, CapWindow::Seconds(60))];
        assert!(counts.try_count(USER, &rules, DAY));
        assert!(counts.try_count(USER, &rules, DAY + 1));
        assert!(!counts.has_room(USER, &rules, DAY + 2), "the tighter of two caps on one counter binds");
        assert!(!counts.try_count(USER, &rules, DAY + 2));
        assert_eq!(counts.count(&rules[1], DAY), 2, "two rules on one counter count once");
        assert_eq!(counts.count(&rules[2], DAY), 2);
        assert_eq!(counts.count(&rules[2], DAY + 60), 0, "the next minute's counter");
        assert_eq!(counts.pending(), 2);
        let tally = counts.lock();
        assert_eq!(tally.pending[0].counters.len(), 2);
        assert_eq!(tally.pending[0].counters[0].limit, 2);
        drop(tally);

        // another user: no room, nothing recorded; no rules: always room
        assert!(!counts.has_room(USER + 1, &[], DAY));
        assert!(!counts.try_count(USER + 1, &[], DAY));
        assert!(counts.try_count(USER, &[], DAY));
        assert_eq!(counts.pending(), 3);
        assert!(!counts.try_count(USER, &[rule(3, 0, CapWindow::Lifetime)], DAY), "a cap of 0 never admits");
    }
}
