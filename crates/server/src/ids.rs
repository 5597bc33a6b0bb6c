//! ids: UUIDv7s for the hot paths (request, decision and event ids), made per thread without a
//! lock and without a clock read of their own: the caller passes the request's time.
//!
//! Layout (RFC 9562 §5.7, with §6.2 method 1): 48-bit Unix milliseconds, a 12-bit counter in
//! `rand_a` that orders the ids one thread makes within a millisecond, 62 random bits in `rand_b`
//! (a per-thread `SmallRng` seeded from the OS) that keep the threads' ids apart. When a thread
//! makes more than 4096 ids in one millisecond, or the clock steps back, its timestamp runs
//! ahead of the clock by as much as needed, so one thread's ids always increase.

use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use uuid::Uuid;

struct State {
    /// Milliseconds of the last id made on this thread.
    last_ms: u64,
    /// Its counter (0..=0xFFF).
    seq: u16,
    rng: rand::rngs::SmallRng,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State {
        last_ms: 0,
        seq: 0,
        rng: rand::rngs::SmallRng::from_os_rng(),
    });
}

/// A new UUIDv7 for time `now_ms` (Unix milliseconds; a negative time counts as 0).
pub fn v7(now_ms: i64) -> Uuid {
    STATE.with_borrow_mut(|s| {
        let now = u64::try_from(now_ms).unwrap_or(0);
        if now > s.last_ms {
            s.last_ms = now;
            s.seq = 0;
        } else if s.seq < 0xFFF {
            s.seq += 1;
        } else {
            s.last_ms += 1;
            s.seq = 0;
        }
        let mut bytes = [0u8; 10];
        bytes[..2].copy_from_slice(&s.seq.to_be_bytes());
        s.rng.fill(&mut bytes[2..]);
        uuid::Builder::from_unix_timestamp_millis(s.last_ms, &bytes).into_uuid()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_carry_the_time_and_increase_on_one_thread() {
        let now = 1_795_000_000_123i64;
        let ids: Vec<Uuid> = (0..10_000).map(|_| v7(now)).collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
        }
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
        // The first 4096 ids keep the millisecond; the rest run ahead of it.
        let ms = |u: &Uuid| u.get_timestamp().map(|t| t.to_unix()).map(|(s, n)| s * 1000 + u64::from(n) / 1_000_000);
        assert_eq!(ms(&ids[0]), Some(now as u64));
        assert_eq!(ms(&ids[4095]), Some(now as u64));
        assert_eq!(ms(&ids[4096]), Some(now as u64 + 1));
        // A later millisecond: the clock again, counter reset; an earlier one: still increasing.
        let later = v7(now + 10);
        assert_eq!(ms(&later), Some(now as u64 + 10));
        let earlier = v7(now - 5);
        assert!(earlier > later);
    }

    #[test]
    fn threads_make_different_ids_in_the_same_millisecond() {
        let now = 1_795_000_000_000i64;
        let mut all: Vec<Uuid> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4).map(|_| s.spawn(move || (0..2000).map(|_| v7(now)).collect::<Vec<_>>())).collect();
            hs.into_iter().flat_map(|h| h.join().expect("thread")).collect()
        });
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
