//! live: what the load threads publish while they run, and the monitor that reads it. Each
//! thread owns a [`ThreadLive`] — response and error counts and a coarse log-linear latency
//! histogram, all relaxed atomics that only that thread increments (the request path never
//! locks or waits). The [`Monitor`], on the thread that started the run, drains them about
//! once a second into the report's timeline (throughput, p50 and p99 per second) and draws the
//! progress bar (indicatif, on stderr, only when stderr is a terminal).

use crate::engine::Stop;
use crate::report::{Second, MAX_LATENCY_US};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Sub-buckets per power of two: bucket width is 1/16 of its value, so a bucket's middle is
/// within about 3 % of every latency in it.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Enough buckets for latencies up to [`MAX_LATENCY_US`] (below 2^26 µs).
pub const BUCKETS: usize = (26 - SUB_BITS as usize + 1) * SUB + SUB;

/// The bucket of a latency in µs.
fn bucket(us: u64) -> usize {
    let us = us.min(MAX_LATENCY_US);
    if us < SUB as u64 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros();
    let sub = ((us >> (e - SUB_BITS)) as usize) & (SUB - 1);
    (((e - SUB_BITS + 1) as usize) << SUB_BITS) + sub
}

/// The middle of a bucket, in µs.
fn bucket_value(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let e = (i >> SUB_BITS) as u32 + SUB_BITS - 1;
    let sub = (i & (SUB - 1)) as u64;
    let width = 1u64 << (e - SUB_BITS);
    ((SUB as u64 + sub) << (e - SUB_BITS)) + width / 2
}

/// The latency at quantile `q` of bucket counts (0 when empty).
fn quantile(counts: &[u64], q: f64) -> u64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return bucket_value(i);
        }
    }
    bucket_value(counts.len() - 1)
}

/// Live counters of one load thread (own cache lines: no false sharing with other threads).
#[repr(align(64))]
pub struct ThreadLive {
    /// Responses and failures, warm-up included.
    requests: AtomicU64,
    errors: AtomicU64,
    /// Requests of the measured window.
    measured: AtomicU64,
    latency: Box<[AtomicU64]>,
}

impl Default for ThreadLive {
    fn default() -> Self {
        ThreadLive {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            measured: AtomicU64::new(0),
            latency: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl ThreadLive {
    /// Counts one request that ended after `latency_us`.
    pub fn record(&self, latency_us: u64, error: bool, measured: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if measured {
            self.measured.fetch_add(1, Ordering::Relaxed);
        }
        self.latency[bucket(latency_us)].fetch_add(1, Ordering::Relaxed);
    }
}

/// Builds the timeline and draws the progress bar.
pub struct Monitor {
    bar: ProgressBar,
    start: Instant,
    warmup_end: Instant,
    stop: Stop,
    last: Instant,
    last_requests: u64,
    last_errors: u64,
    counts: Vec<u64>,
    timeline: Vec<Second>,
}

/// How often the monitor samples an interval for the timeline.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

impl Monitor {
    /// `show`: draw the progress bar (still only if stderr is a terminal).
    pub fn new(show: bool, start: Instant, warmup: Duration, stop: Stop) -> Monitor {
        let bar = if show && std::io::stderr().is_terminal() {
            let len = match stop {
                Stop::Duration(d) => (warmup + d).as_millis() as u64,
                Stop::Requests(n) => n,
            };
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {percent:>3}% {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message("starting");
            bar
        } else {
            ProgressBar::hidden()
        };
        Monitor {
            bar,
            start,
            warmup_end: start + warmup,
            stop,
            last: start,
            last_requests: 0,
            last_errors: 0,
            counts: vec![0; BUCKETS],
            timeline: Vec::new(),
        }
    }

    /// When the next interval is due.
    pub fn next_sample(&self) -> Instant {
        self.last + SAMPLE_EVERY
    }

    /// Moves the bar, and samples an interval when one is due.
    pub fn poll(&mut self, live: &[ThreadLive]) {
        let now = Instant::now();
        if now >= self.next_sample() {
            self.sample(live, now);
        }
        let pos = match self.stop {
            Stop::Duration(_) => now.saturating_duration_since(self.start).as_millis() as u64,
            Stop::Requests(_) => live.iter().map(|l| l.measured.load(Ordering::Relaxed)).sum(),
        };
        self.bar.set_position(pos.min(self.bar.length().unwrap_or(u64::MAX)));
    }

    fn sample(&mut self, live: &[ThreadLive], now: Instant) {
        if now <= self.start {
            self.last = now;
            return;
        }
        let from = self.last.max(self.start);
        let secs = now.duration_since(from).as_secs_f64();
        let requests: u64 = live.iter().map(|l| l.requests.load(Ordering::Relaxed)).sum();
        let errors: u64 = live.iter().map(|l| l.errors.load(Ordering::Relaxed)).sum();
        self.counts.iter_mut().for_each(|c| *c = 0);
        for l in live {
            for (c, b) in self.counts.iter_mut().zip(l.latency.iter()) {
                *c += b.swap(0, Ordering::Relaxed);
            }
        }
        let n = requests.saturating_sub(self.last_requests);
        let second = Second {
            t_secs: now.duration_since(self.start).as_secs_f64(),
            secs,
            requests: n,
            errors: errors.saturating_sub(self.last_errors),
            throughput_rps: if secs > 0.0 { n as f64 / secs } else { 0.0 },
            p50_us: quantile(&self.counts, 0.50),
            p99_us: quantile(&self.counts, 0.99),
            // Mostly in the warm-up: its middle is.
            warmup: from + now.duration_since(from) / 2 < self.warmup_end,
        };
        let phase = if second.warmup { "warm-up" } else { "measuring" };
        self.bar.set_message(format!(
            "{phase} · {:.0} req/s · {errors} errors · p99 {} (last second)",
            second.throughput_rps,
            ms(second.p99_us)
        ));
        self.last = now;
        self.last_requests = requests;
        self.last_errors = errors;
        if secs > 0.0 {
            self.timeline.push(second);
        }
    }

    /// Samples the last interval, clears the bar and returns the timeline.
    pub fn finish(mut self, live: &[ThreadLive]) -> Vec<Second> {
        let now = Instant::now();
        if now.duration_since(self.last) >= Duration::from_millis(100) || self.timeline.is_empty() {
            self.sample(live, now);
        } else if let (Some(last), true) = (self.timeline.last_mut(), now > self.last) {
            // A sliver of an interval: fold its requests into the last one.
            let requests: u64 = live.iter().map(|l| l.requests.load(Ordering::Relaxed)).sum();
            let errors: u64 = live.iter().map(|l| l.errors.load(Ordering::Relaxed)).sum();
            last.requests += requests.saturating_sub(self.last_requests);
            last.errors += errors.saturating_sub(self.last_errors);
        }
        self.bar.finish_and_clear();
        // Seconds after the last response (callbacks still on their way) say nothing.
        while self.timeline.len() > 1 && self.timeline.last().is_some_and(|s| s.requests == 0) {
            self.timeline.pop();
        }
        self.timeline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_close() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(15), 15);
        assert_eq!(bucket(16), 16);
        assert_eq!(bucket(31), 31);
        assert_eq!(bucket(32), 32);
        assert!(bucket(MAX_LATENCY_US) < BUCKETS);
        assert_eq!(bucket(u64::MAX), bucket(MAX_LATENCY_US));
        let mut last = 0;
        for us in [1u64, 7, 20, 33, 100, 999, 1000, 1001, 12_345, 250_000, 3_000_000, 59_999_999] {
            let b = bucket(us);
            assert!(b >= last, "buckets go up with latency");
            last = b;
            let v = bucket_value(b) as f64;
            assert!((v - us as f64).abs() <= us as f64 * 0.035 + 1.0, "{us} µs read back as {v}");
        }
    }

    #[test]
    fn quantiles_come_from_the_counts() {
        let mut counts = vec![0u64; BUCKETS];
        for us in 1..=1000u64 {
            counts[bucket(us * 10)] += 1;
        }
        let p50 = quantile(&counts, 0.5) as f64;
        let p99 = quantile(&counts, 0.99) as f64;
        assert!((p50 - 5000.0).abs() < 5000.0 * 0.04, "p50 {p50}");
        assert!((p99 - 9900.0).abs() < 9900.0 * 0.04, "p99 {p99}");
        assert_eq!(quantile(&vec![0; BUCKETS], 0.99), 0);
    }

    #[test]
    fn the_monitor_drains_the_threads_into_a_timeline() {
        let live: Vec<ThreadLive> = (0..2).map(|_| ThreadLive::default()).collect();
        let start = Instant::now();
        let m = Monitor::new(false, start, Duration::ZERO, Stop::Requests(10));
        for i in 0..100 {
            live[i % 2].record(1000, i == 0, true);
        }
        std::thread::sleep(Duration::from_millis(120));
        let timeline = m.finish(&live);
        assert_eq!(timeline.len(), 1);
        let s = &timeline[0];
        assert_eq!((s.requests, s.errors), (100, 1));
        assert!((s.p99_us as f64 - 1000.0).abs() < 40.0, "p99 {}", s.p99_us);
        assert!(!s.warmup);
    }
}
