//! hiccup: how long this CPU stops running a busy thread. Spins reading the monotonic clock for
//! SECONDS and reports every gap between two consecutive reads longer than 2 ms (the thread did
//! not run: preempted by another task, an interrupt storm, or the hypervisor descheduling the
//! vCPU), and counts of gaps over 0.5/1/2/5 ms. `scripts/bench-hiccup.sh` runs it pinned to each
//! CPU alone and on both at once; a latency benchmark's tail on this machine can be no better
//! than these stalls, amplified by the server's backlog while they last.
//!
//! `cargo run --release -p adp-loadgen --example hiccup -- [SECONDS]` (default 10).

use std::time::{Duration, Instant};

fn main() {
    let seconds = std::env::args().nth(1).and_then(|s| s.parse::<f64>().ok()).filter(|s| *s > 0.0).unwrap_or(10.0);
    let run = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut last = start;
    let mut over = [0u64; 4];
    let limits =
        [Duration::from_micros(500), Duration::from_millis(1), Duration::from_millis(2), Duration::from_millis(5)];
    let mut max = Duration::ZERO;
    let mut stalled = Duration::ZERO;
    loop {
        let now = Instant::now();
        let gap = now - last;
        last = now;
        if gap > limits[0] {
            for (count, limit) in over.iter_mut().zip(limits) {
                *count += u64::from(gap > limit);
            }
            stalled += gap;
            if gap > limits[2] {
                println!("gap {:.2} ms at {:.3} s", gap.as_secs_f64() * 1e3, (now - start).as_secs_f64());
            }
        }
        max = max.max(gap);
        if now - start >= run {
            break;
        }
    }
    println!(
        "{seconds} s: gaps > 0.5 ms: {}, > 1 ms: {}, > 2 ms: {}, > 5 ms: {}; longest {:.2} ms; {:.2}% of the time in gaps > 0.5 ms",
        over[0],
        over[1],
        over[2],
        over[3],
        max.as_secs_f64() * 1e3,
        stalled.as_secs_f64() / seconds * 100.0
    );
}
