//! gaps: the ingest's offset-gap guard, a pure state machine (no Kafka in here) the consumer
//! thread asks about every message it polls.
//!
//! # Why
//!
//! A fetch may jump over offsets the broker has acknowledged and will serve later. Tansu 0.6
//! (the Kafka-API broker of the tests) raises a partition's high watermark when a produce
//! reserves its offsets and writes the batch afterwards, and its fetch returns every stored batch
//! at or above the requested offset without checking that the first one starts there: if batch A
//! (5542–5581) is stored after batch B (5582–), a fetch at 5542 returns B, librdkafka takes the
//! jump and A is never read (40 events lost in the distributed test). A fetch at an offset
//! inside a batch also skips that batch on 0.6 (fixed in 0.7): after a restart the resume
//! offset recorded in ClickHouse is often inside one.
//!
//! Offsets of a partition are consecutive unless the log has real gaps (compaction, transaction
//! markers on Kafka), so the guard keeps the next expected offset of each partition and, when a
//! message lies past it, refuses the message: the reader pauses the partition and, after
//! [`REREAD_AFTER`], seeks it back and resumes it. The first re-read starts at the hole; later
//! ones start further back (in case the hole begins inside a batch) and the offsets before the
//! hole they deliver again are skipped. A hole still there after the settings' wait is
//! accepted, counted and logged: the ingest never stalls on a gap a real broker can have.
//!
//! A message below the expected offset that the guard did not ask for (the consumer went back:
//! offset reset after a broker lost its log, or a prefetched message a seek did not purge) is
//! taken and the partition continues from there: re-reading is harmless because the sink drops
//! events it already holds by id ([`crate::sink`], step 2), and following the consumer back is
//! what the ingest did before the guard, so a recreated partition is still read.

use std::ops::Range;
use std::time::{Duration, Instant};

/// How long a partition with a hole is paused before it is read again (Tansu stores a batch
/// it has acknowledged within milliseconds; a shorter wait re-fetches for nothing).
pub const REREAD_AFTER: Duration = Duration::from_millis(80);

/// The default of [`crate::IngestSettings::gap_wait_ms`]: how long a hole may persist before
/// the ingest accepts it.
pub const GAP_WAIT_MS: u64 = 3_000;

/// A hole is accepted only after this many re-reads too (unless the wait is zero): a consumer
/// thread blocked on a full sink for longer than the wait still re-reads before it gives up.
const MIN_REREADS: u32 = 3;

/// Re-reads after the first start this many offsets before the hole, doubling each time up to
/// `REWIND_BEFORE << REWIND_DOUBLINGS` (65,536): the start of the batch the hole may begin in.
const REWIND_BEFORE: i64 = 64;
const REWIND_DOUBLINGS: u32 = 10;

/// What the reader does with a polled message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The expected offset (or the first message of a partition whose start is unknown): take it.
    Take,
    /// Past a hole that persisted beyond the wait: take it, count the gap and say so loudly.
    /// Should the hole's offsets turn up later still, they are not taken (a later re-read skips
    /// what lies below the expected offset): the gap stays counted, and alerted on.
    TakeAfterGap { missing: Range<i64>, waited: Duration },
    /// Below the expected offset, not asked for: take it and continue from here (the sink drops
    /// what it already holds). `expected` is where the partition was.
    TakeRewound { expected: i64 },
    /// Already taken (a re-read the guard asked for), or read before its partition was paused:
    /// drop it.
    Skip,
    /// Past a hole: drop it and pause the partition; [`GapGuard::due`] says when to read it again
    /// and from where. `first` is true for the first re-read of this hole.
    Hold { missing: Range<i64>, first: bool },
}

/// One partition's state.
#[derive(Clone, Debug, Default)]
struct Partition {
    /// The offset the next message should have; `None` until known.
    expected: Option<i64>,
    /// The hole being re-read.
    hole: Option<Hole>,
    /// Paused: read again from `.1` at `.0`.
    paused: Option<(Instant, i64)>,
    /// A re-read started here, before `expected`: offsets in `floor..expected` were taken already.
    floor: Option<i64>,
}

#[derive(Clone, Debug)]
struct Hole {
    /// Its first offset (the expected offset when it was found).
    from: i64,
    since: Instant,
    rereads: u32,
}

/// The guard: per partition, the next expected offset and the hole being re-read.
#[derive(Debug)]
pub struct GapGuard {
    /// Indexed by partition id (ids are small and dense).
    parts: Vec<Partition>,
    /// How long a hole may persist before it is accepted.
    wait: Duration,
    /// Partitions paused, waiting for their re-read.
    paused: usize,
}

impl GapGuard {
    /// A guard that accepts a hole once it has persisted for `wait` (zero: at once, counted).
    pub fn new(wait: Duration) -> GapGuard {
        GapGuard { parts: Vec::new(), wait, paused: 0 }
    }

    fn part(&mut self, partition: i32) -> Option<&mut Partition> {
        let i = usize::try_from(partition).ok()?;
        if i >= self.parts.len() {
            self.parts.resize_with(i + 1, Partition::default);
        }
        self.parts.get_mut(i)
    }

    /// The partition was (re)assigned to start at `at` (`None`: where it starts is unknown, the
    /// first message sets it). Whatever was paused or re-read is over: the assignment fetches
    /// from `at`. A hole that starts there keeps its age, so a re-assignment does not restart
    /// its wait.
    pub fn assigned(&mut self, partition: i32, at: Option<i64>) {
        let was_paused = match self.part(partition) {
            Some(p) => {
                let was_paused = p.paused.take().is_some();
                p.expected = at;
                p.floor = None;
                if p.hole.as_ref().is_some_and(|h| Some(h.from) != at) {
                    p.hole = None;
                }
                was_paused
            }
            None => false,
        };
        if was_paused {
            self.paused -= 1;
        }
    }

    /// The next offset expected from `partition`, if known.
    pub fn expected(&self, partition: i32) -> Option<i64> {
        usize::try_from(partition).ok().and_then(|i| self.parts.get(i)).and_then(|p| p.expected)
    }

    /// Whether a partition is paused waiting for its re-read (then call [`GapGuard::due`]).
    pub fn holding(&self) -> bool {
        self.paused > 0
    }

    /// What to do with the message at `offset` of `partition`. `now` is read only when the
    /// offset is not the expected one (the common case costs no clock).
    pub fn check(&mut self, partition: i32, offset: i64, now: impl FnOnce() -> Instant) -> Verdict {
        let wait = self.wait;
        // Negative partitions do not come from a consumer; take them unguarded.
        let Some(p) = self.part(partition) else { return Verdict::Take };
        let Some(expected) = p.expected else {
            p.expected = Some(offset + 1);
            return Verdict::Take;
        };
        if offset == expected {
            p.expected = Some(offset + 1);
            p.hole = None;
            p.floor = None;
            return Verdict::Take;
        }
        if offset < expected {
            if p.paused.is_some() || p.floor.is_some_and(|f| offset >= f) {
                return Verdict::Skip;
            }
            *p = Partition { expected: Some(offset + 1), ..Partition::default() };
            return Verdict::TakeRewound { expected };
        }
        if p.paused.is_some() {
            // Fetched before the pause (librdkafka discards those; this is the second line).
            return Verdict::Skip;
        }
        let now = now();
        p.floor = None;
        let hole = match &mut p.hole {
            Some(h) if h.from == expected => h,
            other => other.insert(Hole { from: expected, since: now, rereads: 0 }),
        };
        let waited = now.saturating_duration_since(hole.since);
        if waited >= wait && (wait.is_zero() || hole.rereads >= MIN_REREADS) {
            p.hole = None;
            p.expected = Some(offset + 1);
            return Verdict::TakeAfterGap { missing: expected..offset, waited };
        }
        let rereads = hole.rereads;
        hole.rereads += 1;
        let from = match rereads {
            0 => expected,
            n => (expected - (REWIND_BEFORE << (n - 1).min(REWIND_DOUBLINGS))).max(0),
        };
        if from < expected {
            p.floor = Some(from);
        }
        p.paused = Some((now + REREAD_AFTER, from));
        self.paused += 1;
        Verdict::Hold { missing: expected..offset, first: rereads == 0 }
    }

    /// The paused partitions whose re-read is due at `now`, with the offset to seek each to;
    /// they count as resumed from here on (see [`GapGuard::postpone`] if the seek fails).
    pub fn due(&mut self, now: Instant) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        if self.paused == 0 {
            return out;
        }
        for (i, p) in self.parts.iter_mut().enumerate() {
            if let Some((at, from)) = p.paused {
                if at <= now {
                    p.paused = None;
                    out.push((i as i32, from));
                }
            }
        }
        self.paused -= out.len();
        out
    }

    /// The seek or resume of a due partition failed: keep it paused and try again later.
    pub fn postpone(&mut self, partition: i32, from: i64, now: Instant) {
        let newly = match self.part(partition) {
            Some(p) => p.paused.replace((now + REREAD_AFTER, from)).is_none(),
            None => false,
        };
        if newly {
            self.paused += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(3);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `offsets` of `partition` at `now`, asserting each is taken.
    fn take_all(g: &mut GapGuard, partition: i32, offsets: Range<i64>, now: Instant) {
        for o in offsets {
            assert_eq!(g.check(partition, o, || now), Verdict::Take, "offset {o}");
        }
    }

    #[test]
    fn a_jump_past_a_batch_is_held_and_the_partition_read_again_from_the_hole() {
        let t0 = Instant::now();
        let mut g = GapGuard::new(WAIT);
        g.assigned(1, Some(0));
        take_all(&mut g, 1, 0..5542, t0);
        // Batch B arrives before batch A (5542–5581): not taken, the partition is held.
        assert_eq!(g.check(1, 5582, || t0), Verdict::Hold { missing: 5542..5582, first: true });
        assert!(g.holding());
        assert_eq!(g.expected(1), Some(5542), "nothing past the hole was taken");
        // The rest of B, prefetched before the pause, is dropped.
        assert_eq!(g.check(1, 5583, || t0), Verdict::Skip);
        assert!(g.due(t0 + ms(10)).is_empty(), "not before the back-off");
        assert_eq!(g.due(t0 + REREAD_AFTER), vec![(1, 5542)], "re-read from the hole");
        assert!(!g.holding());
        // The re-read delivers A, then B.
        take_all(&mut g, 1, 5542..5622, t0 + ms(100));
        assert_eq!(g.expected(1), Some(5622));
    }

    #[test]
    fn a_hole_that_persists_is_accepted_only_after_the_wait_and_once() {
        let t0 = Instant::now();
        let mut g = GapGuard::new(WAIT);
        g.assigned(0, Some(100));
        take_all(&mut g, 0, 100..110, t0);
        let mut now = t0;
        let mut froms = Vec::new();
        let mut first = true;
        while now < t0 + WAIT {
            assert_eq!(g.check(0, 150, || now), Verdict::Hold { missing: 110..150, first });
            first = false;
            now += REREAD_AFTER;
            let due = g.due(now);
            assert_eq!(due.len(), 1);
            froms.push(due[0].1);
        }
        // The first re-read starts at the hole, later ones further back, never below 0.
        assert_eq!(&froms[..3], &[110, 110 - 64, 0]);
        assert!(froms.iter().all(|f| *f <= 110 && *f >= 0));
        let verdict = g.check(0, 150, || now);
        assert!(
            matches!(&verdict, Verdict::TakeAfterGap { missing, waited } if *missing == (110..150) && *waited >= WAIT),
            "{verdict:?}"
        );
        assert_eq!(g.expected(0), Some(151));
        take_all(&mut g, 0, 151..160, now);
        assert!(!g.holding());
    }

    #[test]
    fn a_hole_is_re_read_a_few_times_however_long_the_wait_took() {
        // The consumer thread was blocked (the sink full) past the wait: still re-read first.
        let t0 = Instant::now();
        let mut g = GapGuard::new(WAIT);
        g.assigned(0, Some(0));
        let mut now = t0;
        for _ in 0..MIN_REREADS {
            assert!(matches!(g.check(0, 10, || now), Verdict::Hold { .. }));
            now += WAIT;
            assert_eq!(g.due(now).len(), 1);
        }
        assert!(matches!(g.check(0, 10, || now), Verdict::TakeAfterGap { .. }));
    }

    #[test]
    fn a_zero_wait_accepts_at_once() {
        let t0 = Instant::now();
        let mut g = GapGuard::new(Duration::ZERO);
        g.assigned(0, Some(0));
        take_all(&mut g, 0, 0..5, t0);
        assert_eq!(g.check(0, 9, || t0), Verdict::TakeAfterGap { missing: 5..9, waited: Duration::ZERO });
        assert!(!g.holding());
    }

    #[test]
    fn offsets_before_the_hole_delivered_again_by_a_re_read_are_skipped() {
        // Tansu 0.6: a fetch inside a batch skips it. The resume offset 1020 lies inside the
        // batch 1000–1039, so reading from 1020 (twice) returns 1040; reading from 956 returns
        // the batch from 1000.
        let t0 = Instant::now();
        let mut g = GapGuard::new(WAIT);
        g.assigned(0, Some(1020));
        assert_eq!(g.check(0, 1040, || t0), Verdict::Hold { missing: 1020..1040, first: true });
        let t1 = t0 + REREAD_AFTER;
        assert_eq!(g.due(t1), vec![(0, 1020)]);
        assert_eq!(g.check(0, 1040, || t1), Verdict::Hold { missing: 1020..1040, first: false });
        let t2 = t1 + REREAD_AFTER;
        assert_eq!(g.due(t2), vec![(0, 1020 - 64)]);
        for o in 1000..1020 {
            assert_eq!(g.check(0, o, || t2), Verdict::Skip, "offset {o} is before the resume offset");
        }
        take_all(&mut g, 0, 1020..1080, t2);
        // The next message below is no longer part of the re-read: a rewind.
        assert_eq!(g.check(0, 1010, || t2), Verdict::TakeRewound { expected: 1080 });
    }

    #[test]
    fn a_rewind_not_asked_for_is_followed() {
        // The broker lost its log and the partition restarts at 0 (offset reset): read it.
        let t0 = Instant::now();
        let mut g = GapGuard::new(WAIT);
        g.assigned(2, Some(5000));
        take_all(&mut g, 2, 5000..5010, t0);
        assert_eq!(g.check(2, 0, || t0), Verdict::TakeRewound { expected: 5010 });
        take_all(&mut g, 2, 1..50, t0);
        assert_eq!(g.expected(2), Some(50));
    }

    #[test]
    fn partitions_are_independent() {
        let t0 = Instant::now();
        let mut g = GapGuard::new(WAIT);
        for p in 0..3 {
            g.assigned(p, Some(0));
        }
        take_all(&mut g, 0, 0..10, t0);
        take_all(&mut g, 1, 0..10, t0);
        assert_eq!(g.check(1, 50, || t0), Verdict::Hold { missing: 10..50, first: true });
        // Partitions 0 and 2 go on while 1 is held.
        take_all(&mut g, 0, 10..20, t0);
        take_all(&mut g, 2, 0..20, t0);
        assert_eq!(g.check(1, 51, || t0), Verdict::Skip);
        assert_eq!(g.check(2, 30, || t0), Verdict::Hold { missing: 20..30, first: true });
        assert_eq!(g.due(t0 + REREAD_AFTER), vec![(1, 10), (2, 20)]);
        take_all(&mut g, 1, 10..60, t0 + REREAD_AFTER);
        take_all(&mut g, 2, 20..40, t0 + REREAD_AFTER);
        assert_eq!((g.expected(0), g.expected(1), g.expected(2)), (Some(20), Some(60), Some(40)));
        assert_eq!(g.expected(3), None);
    }

    #[test]
    fn the_resume_position_after_a_restart_is_the_first_expected_offset() {
        let t0 = Instant::now();
        // A new process: partition 0 resumes at the offset ClickHouse recorded.
        let mut g = GapGuard::new(WAIT);
        g.assigned(0, Some(5542));
        assert_eq!(g.check(0, 5582, || t0), Verdict::Hold { missing: 5542..5582, first: true });
        assert_eq!(g.due(t0 + REREAD_AFTER), vec![(0, 5542)]);
        take_all(&mut g, 0, 5542..5622, t0 + REREAD_AFTER);

        // Nothing recorded and the start unknown: the first message sets it.
        let mut g = GapGuard::new(WAIT);
        g.assigned(0, None);
        take_all(&mut g, 0, 7..9, t0);
        assert_eq!(g.check(0, 12, || t0), Verdict::Hold { missing: 9..12, first: true });
    }

    #[test]
    fn a_re_assignment_ends_the_pause_and_keeps_the_age_of_the_hole() {
        let t0 = Instant::now();
        let mut g = GapGuard::new(WAIT);
        g.assigned(0, Some(0));
        take_all(&mut g, 0, 0..10, t0);
        assert!(matches!(g.check(0, 20, || t0), Verdict::Hold { .. }));
        g.assigned(0, g.expected(0));
        assert!(!g.holding(), "the assignment fetches from the hole itself");
        assert!(g.due(t0 + WAIT).is_empty());
        let soon = t0 + ms(1);
        for _ in 1..MIN_REREADS {
            assert!(matches!(g.check(0, 20, || soon), Verdict::Hold { first: false, .. }));
            assert_eq!(g.due(soon + REREAD_AFTER).len(), 1);
        }
        let late = t0 + WAIT;
        assert!(matches!(g.check(0, 20, || late), Verdict::TakeAfterGap { .. }), "the wait began at t0");
    }

    #[test]
    fn a_failed_seek_is_postponed() {
        let t0 = Instant::now();
        let mut g = GapGuard::new(WAIT);
        g.assigned(0, Some(0));
        assert!(matches!(g.check(0, 5, || t0), Verdict::Hold { .. }));
        let t1 = t0 + REREAD_AFTER;
        assert_eq!(g.due(t1), vec![(0, 0)]);
        g.postpone(0, 0, t1);
        assert!(g.holding());
        assert!(g.due(t1).is_empty());
        assert_eq!(g.due(t1 + REREAD_AFTER), vec![(0, 0)]);
    }
}
