//! Single-core decision throughput and latency percentiles on synthetic catalogs.
//! `cargo run --release -p adp-engine --example decide_latency [decisions]`
//! Pin it for stable numbers: `taskset -c 1 target/release/examples/decide_latency`.

use adp_engine::delivery::CounterRegistry;
use adp_engine::pipeline::{decide, DecideInput, EngineScratch, SlotRequest};
use adp_engine::snapshot::Snapshot;
use adp_engine::synth;
use chrono::Utc;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(500_000);
    let requests = synth::requests(4096, 7);
    println!("| catalog | line items | matched/request | decisions | decisions/s (1 core) | p50 µs | p99 µs | p99.9 µs | fill |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let runs = [
        (synth::Profile::Inventory, 10_000usize),
        (synth::Profile::Inventory, 100_000),
        (synth::Profile::Broad, 10_000),
        (synth::Profile::Broad, 100_000),
    ];
    for (profile, size) in runs {
        let snap = Snapshot::build(1, &synth::catalog(size, 42, profile), &CounterRegistry::default());
        let slots: Vec<[SlotRequest<'_>; 1]> = requests
            .iter()
            .map(|(_, slot)| {
                [SlotRequest {
                    placement: snap.placements.get(&slot.placement_id),
                    slot: slot.clone(),
                    channel: Default::default(),
                }]
            })
            .collect();
        let now = Utc::now();
        let mut matched = 0usize;
        let mut ix_scratch = adp_engine::index::Scratch::default();
        let mut found = Vec::new();
        for (attrs, slot) in &requests {
            found.clear();
            snap.index.matches(&adp_engine::request::MatchInput { attrs, slot, now }, &mut ix_scratch, &mut found);
            matched += found.len();
        }
        let mut scratch = EngineScratch::seeded(1);
        let mut out = Vec::new();
        let mut lat = Vec::with_capacity(n);
        let mut filled = 0usize;
        // warm up
        for i in 0..20_000 {
            let k = i % requests.len();
            let input =
                DecideInput { attrs: &requests[k].0, user_key: Some(i as u64), now, slots: &slots[k], dry_run: true };
            decide(&snap, &input, &synth::UnlimitedCaps, &mut scratch, &mut out);
        }
        let start = Instant::now();
        for i in 0..n {
            let k = i % requests.len();
            let input =
                DecideInput { attrs: &requests[k].0, user_key: Some(i as u64), now, slots: &slots[k], dry_run: true };
            let t = Instant::now();
            decide(&snap, &input, &synth::UnlimitedCaps, &mut scratch, &mut out);
            lat.push(t.elapsed().as_nanos() as u64);
            filled += out.iter().filter(|o| o.is_ok()).count();
        }
        let total = start.elapsed();
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
        println!(
            "| {profile:?} | {size} | {:.0} | {n} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1}% |",
            matched as f64 / requests.len() as f64,
            n as f64 / total.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            pct(0.999),
            100.0 * filled as f64 / n as f64
        );
    }
}
