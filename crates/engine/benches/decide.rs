//! Criterion benchmarks of the engine on synthetic catalogs of 10k and 100k line items:
//! the targeting index alone, and a full single-placement decision.

use adp_engine::delivery::CounterRegistry;
use adp_engine::index::Scratch;
use adp_engine::pipeline::{decide, DecideInput, EngineScratch, SlotRequest};
use adp_engine::request::MatchInput;
use adp_engine::snapshot::Snapshot;
use adp_engine::synth;
use chrono::Utc;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let requests = synth::requests(4096, 7);
    for (profile, size) in [
        (synth::Profile::Inventory, 10_000usize),
        (synth::Profile::Inventory, 100_000),
        (synth::Profile::Broad, 10_000),
    ] {
        let label = format!("{size}-{profile:?}").to_lowercase();
        let snap = Snapshot::build(1, &synth::catalog(size, 42, profile), &CounterRegistry::default());
        let now = Utc::now();
        let mut g = c.benchmark_group("engine");
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("index_match", &label), &snap, |b, snap| {
            let mut scratch = Scratch::default();
            let mut out = Vec::new();
            let mut i = 0;
            b.iter(|| {
                let (attrs, slot) = &requests[i % requests.len()];
                i += 1;
                out.clear();
                snap.index.matches(&MatchInput { attrs, slot, now }, &mut scratch, &mut out);
                black_box(out.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("decide", &label), &snap, |b, snap| {
            let mut scratch = EngineScratch::seeded(1);
            let mut out = Vec::new();
            let mut i = 0;
            b.iter(|| {
                let (attrs, slot) = &requests[i % requests.len()];
                i += 1;
                let slots = [SlotRequest {
                    placement: snap.placements.get(&slot.placement_id),
                    slot: slot.clone(),
                    channel: Default::default(),
                }];
                let input = DecideInput { attrs, user_key: Some(i as u64), now, slots: &slots, dry_run: true };
                decide(snap, &input, &synth::UnlimitedCaps, &mut scratch, &mut out);
                black_box(out.len())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
