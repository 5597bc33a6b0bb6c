//! codec: encode and decode of realistic events (UUIDv7 ids, demo-style catalog ids) in the wire
//! format (Protobuf, hand-written writer and reader), the derived prost message, Cap'n Proto unpacked and
//! packed, and serde_json (the local log's current format) as the reference. Each iteration
//! handles the whole sample, so times divide by its length for ns/event; bytes/event is printed
//! first. BENCH.md has a run's numbers.

use adp_domain::events::{Event, EventKind};
use adp_domain::targeting::DeviceType;
use adp_eventwire::capnp_v1::{self, Packing};
use adp_eventwire::proto::EventV1;
use capnp::message::ScratchSpaceHeapAllocator;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;
use std::cell::RefCell;
use std::hint::black_box;
use std::time::Instant;

/// Events in the sample.
const SAMPLE: usize = 256;

/// What a serving day produces, roughly: mostly decisions and impressions, some requests, bids,
/// wins, billing notices, clicks, losses and a few conversions.
fn sample() -> Vec<Event> {
    const MIX: [EventKind; 16] = [
        EventKind::Request,
        EventKind::Decision,
        EventKind::Decision,
        EventKind::Impression,
        EventKind::Impression,
        EventKind::Impression,
        EventKind::Bid,
        EventKind::Bid,
        EventKind::Win,
        EventKind::Loss,
        EventKind::Billing,
        EventKind::Click,
        EventKind::Decision,
        EventKind::Impression,
        EventKind::Request,
        EventKind::Conversion,
    ];
    const LINE_ITEMS: [(&str, &str, &str, &str); 4] = [
        ("demo-acme", "demo-acme-spring", "demo-acme-ron", "demo-acme-banner-300x250"),
        ("demo-acme", "demo-acme-spring", "demo-acme-dach-mobile", "demo-acme-mobile-320x50"),
        ("demo-globex", "demo-globex-citybreaks", "demo-globex-preroll", "demo-globex-video-15s"),
        ("demo-initech", "demo-initech-trial", "demo-initech-retarget", "demo-initech-native"),
    ];
    const DEVICES: [Option<DeviceType>; 4] =
        [Some(DeviceType::Phone), Some(DeviceType::Desktop), Some(DeviceType::Tablet), None];
    (0..SAMPLE)
        .map(|i| {
            let kind = MIX[i % MIX.len()];
            let (advertiser, campaign, line_item, creative) = LINE_ITEMS[i % LINE_ITEMS.len()];
            let time = 1_767_225_600_000 + i as i64 * 7;
            let rtb = matches!(kind, EventKind::Bid | EventKind::Win | EventKind::Loss | EventKind::Billing);
            let billable = matches!(kind, EventKind::Impression | EventKind::Click | EventKind::Billing);
            Event {
                id: uuid::Uuid::now_v7().to_string(),
                kind,
                event_time_ms: time,
                receive_time_ms: time + 3,
                // Client-chosen: here a UUIDv4 in text, as many SDKs send.
                request_id: uuid::Uuid::from_u128(0x4a1c_0000_0000_4000_8000_0000_0000_0000 | i as u128).to_string(),
                decision_id: if kind == EventKind::Request {
                    String::new()
                } else {
                    format!("d{}", uuid::Uuid::now_v7().simple())
                },
                advertiser_id: advertiser.into(),
                campaign_id: campaign.into(),
                line_item_id: line_item.into(),
                creative_id: creative.into(),
                publisher_id: "demo-dailynews".into(),
                site_id: "demo-dailynews-web".into(),
                placement_id: "demo-dailynews-top".into(),
                deal_id: rtb.then(|| "deal-globex-pmp-2026".to_string()),
                user_key: 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1),
                country: Some(["DE", "AT", "CH", "US"][i % 4].into()),
                device_type: DEVICES[i % DEVICES.len()],
                price_micros: if kind == EventKind::Request { 0 } else { 2_500_000 + i as i64 * 1_000 },
                cost_micros: if billable { 2_500 + i as i64 } else { 0 },
                currency: "EUR".into(),
                reason: (kind == EventKind::Loss).then(|| "102".to_string()),
                stands_for_request: kind == EventKind::Decision,
            }
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Codec {
    /// The wire format: `adp_eventwire::encode`/`decode`.
    Prost,
    /// The same bytes through the derived message: `EventV1::from_event` copies the event before
    /// writing, `EventV1::decode` reads into the message that `into_event` then takes apart.
    ProstDerived,
    CapnpUnpacked,
    /// Unpacked, the message built in scratch space kept from one event to the next.
    CapnpScratch,
    CapnpPacked,
    Json,
}

const CODECS: [(&str, Codec); 6] = [
    ("prost", Codec::Prost),
    ("prost_derived", Codec::ProstDerived),
    ("capnp_unpacked", Codec::CapnpUnpacked),
    ("capnp_unpacked_scratch", Codec::CapnpScratch),
    ("capnp_packed", Codec::CapnpPacked),
    ("serde_json", Codec::Json),
];

thread_local! {
    /// The scratch space a Cap'n Proto writer would keep (leaked: it lives as long as the bench).
    static SCRATCH: RefCell<ScratchSpaceHeapAllocator<'static>> =
        RefCell::new(ScratchSpaceHeapAllocator::new(Box::leak(vec![0u8; 8192].into_boxed_slice())));
}

fn encode(codec: Codec, event: &Event, out: &mut Vec<u8>) {
    match codec {
        Codec::CapnpScratch => SCRATCH.with_borrow_mut(|scratch| {
            capnp_v1::encode_with_scratch(event, Packing::Unpacked, scratch, out).expect("a Vec takes it")
        }),
        Codec::Prost => adp_eventwire::encode(event, out),
        Codec::ProstDerived => {
            out.extend_from_slice(&[adp_eventwire::MAGIC, adp_eventwire::SCHEMA_VERSION]);
            EventV1::from_event(event).encode_length_delimited(out).expect("a Vec has room");
        }
        Codec::CapnpUnpacked => capnp_v1::encode(event, Packing::Unpacked, out).expect("a Vec takes it"),
        Codec::CapnpPacked => capnp_v1::encode(event, Packing::Packed, out).expect("a Vec takes it"),
        Codec::Json => serde_json::to_writer(out, event).expect("an event serializes"),
    }
}

fn decode(codec: Codec, record: &[u8]) -> Event {
    match codec {
        Codec::Prost => adp_eventwire::decode(record).expect("decodes"),
        Codec::ProstDerived => {
            EventV1::decode_length_delimited(&record[2..]).expect("decodes").into_event().expect("an event")
        }
        Codec::CapnpUnpacked | Codec::CapnpScratch => capnp_v1::decode(record, Packing::Unpacked).expect("decodes"),
        Codec::CapnpPacked => capnp_v1::decode(record, Packing::Packed).expect("decodes"),
        Codec::Json => serde_json::from_slice(record).expect("decodes"),
    }
}

fn records(codec: Codec, events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            encode(codec, e, &mut out);
            assert_eq!(&decode(codec, &out), e, "round trip");
            out
        })
        .collect()
}

fn print_sizes(events: &[Event]) {
    for (name, codec) in CODECS {
        let total: usize = records(codec, events).iter().map(Vec::len).sum();
        println!("bytes/event {name}: {:.1}", total as f64 / events.len() as f64);
    }
}

/// Times of one pass over the sample, codecs taking turns round by round, so that load from
/// elsewhere on the machine falls on all of them alike; the minimum is the least disturbed pass.
fn interleaved(events: &[Event], rounds: usize) {
    #[derive(Clone, Copy, PartialEq)]
    enum Op {
        Encode,
        Decode,
        Both,
    }
    let ops = [("encode", Op::Encode), ("decode", Op::Decode), ("encode+decode", Op::Both)];
    let recs: Vec<Vec<Vec<u8>>> = CODECS.iter().map(|&(_, c)| records(c, events)).collect();
    let mut times = vec![vec![Vec::with_capacity(rounds); CODECS.len()]; ops.len()];
    let mut buf = Vec::with_capacity(4096);
    for round in 0..rounds {
        for k in 0..CODECS.len() {
            let i = (k + round) % CODECS.len();
            let codec = CODECS[i].1;
            for (o, &(_, op)) in ops.iter().enumerate() {
                let start = Instant::now();
                match op {
                    Op::Encode => {
                        for e in events {
                            buf.clear();
                            encode(codec, black_box(e), &mut buf);
                            black_box(&buf);
                        }
                    }
                    Op::Decode => {
                        for r in &recs[i] {
                            black_box(decode(codec, black_box(r)));
                        }
                    }
                    Op::Both => {
                        for e in events {
                            buf.clear();
                            encode(codec, black_box(e), &mut buf);
                            black_box(decode(codec, &buf));
                        }
                    }
                }
                times[o][i].push(start.elapsed().as_nanos() as f64 / events.len() as f64);
            }
        }
    }
    println!("interleaved, {rounds} rounds, ns/event (min / median):");
    println!("| codec | {} |", ops.map(|(n, _)| n).join(" | "));
    println!("|---|{}", "---|".repeat(ops.len()));
    for (i, (name, _)) in CODECS.iter().enumerate() {
        let cells: Vec<String> = (0..ops.len())
            .map(|o| {
                let t = &mut times[o][i];
                t.sort_by(f64::total_cmp);
                format!("{:.0} / {:.0}", t[0], t[t.len() / 2])
            })
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
}

fn codec(c: &mut Criterion) {
    let events = sample();
    print_sizes(&events);
    // Only under `cargo bench`, not when `cargo test` runs the benches once.
    if std::env::args().any(|a| a == "--bench") {
        interleaved(&events, 1500);
    }

    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, codec) in CODECS {
        let mut buf = Vec::with_capacity(4096);
        group.bench_function(name, |b| {
            b.iter(|| {
                for e in &events {
                    buf.clear();
                    encode(codec, black_box(e), &mut buf);
                    black_box(&buf);
                }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, codec) in CODECS {
        let recs = records(codec, &events);
        group.bench_function(name, |b| {
            b.iter(|| {
                for r in &recs {
                    black_box(decode(codec, black_box(r)));
                }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("encode_decode");
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, codec) in CODECS {
        let mut buf = Vec::with_capacity(4096);
        group.bench_function(name, |b| {
            b.iter(|| {
                for e in &events {
                    buf.clear();
                    encode(codec, black_box(e), &mut buf);
                    black_box(decode(codec, &buf));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
