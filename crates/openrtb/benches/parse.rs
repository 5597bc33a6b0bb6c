//! Bid request decoding: serde_json against sonic-rs on realistic requests (minified, as
//! exchanges send them), `parse_request` (nesting guard + sonic-rs) and the bidder's
//! `parse_request_for_bidding` (the same, skipping the fields it never reads), and what the server pays
//! per request (parse, normalise, validate). The `dom/*` group compares the two SIMD parsers'
//! untyped trees as the fast parse uses one: built, then walked whole (every key, string and
//! integer), sonic-rs' DOM against simd-json's tape.
//!
//! `cargo bench -p adp-openrtb --bench parse -- --warm-up-time 1 --measurement-time 3`

use adp_openrtb::{parse_request, parse_request_for_bidding, parse_request_for_bidding_fast, BidRequest};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;

/// Drops the whitespace outside strings, keeping key order.
fn minify(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !b.is_ascii_whitespace() {
            out.push(b);
            in_string = b == b'"';
        }
    }
    out
}

fn sample(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name);
    let body = minify(&std::fs::read(&path).expect("read sample"));
    let a: BidRequest = serde_json::from_slice(&body).expect("serde_json parses the sample");
    let b: BidRequest = sonic_rs::from_slice(&body).expect("sonic-rs parses the sample");
    assert_eq!(a, b, "{name}: parsers disagree");
    body
}

fn parse(c: &mut Criterion) {
    for (label, file) in
        [("banner_site", "banner_site.json"), ("video_app", "video_app.json"), ("native_site", "native_site.json")]
    {
        let body = sample(file);
        let mut group = c.benchmark_group(format!("parse/{label}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("serde_json", |b| {
            b.iter(|| serde_json::from_slice::<BidRequest>(black_box(&body)).expect("parse"))
        });
        group.bench_function("sonic_rs", |b| {
            b.iter(|| sonic_rs::from_slice::<BidRequest>(black_box(&body)).expect("parse"))
        });
        // The full parse: the nesting guard, then sonic-rs.
        group.bench_function("parse_request", |b| b.iter(|| parse_request(black_box(&body)).expect("parse")));
        // What the bidder calls: the same, skipping the fields it never reads.
        group.bench_function("parse_request_for_bidding", |b| {
            b.iter(|| parse_request_for_bidding(black_box(&body)).expect("parse"))
        });
        // Reference points: the whole body into a DOM (no types, no validation).
        group.bench_function("sonic_rs_dom", |b| {
            b.iter(|| sonic_rs::from_slice::<sonic_rs::Value>(black_box(&body)).expect("parse"))
        });
        // What the server calls: a simd-json tape, then the read fields picked out of it.
        group.bench_function("parse_request_for_bidding_fast", |b| {
            b.iter(|| {
                let mut dom = adp_openrtb::BidDom::default();
                parse_request_for_bidding_fast(black_box(&body), &mut dom).expect("parse").imp.len()
            })
        });
        // The fast parse before it read simd-json's tape: sonic-rs' DOM, then the same walk.
        group.bench_function("sonic_rs_dom_then_walk", |b| {
            b.iter(|| {
                let dom = sonic_rs::from_slice::<sonic_rs::Value>(black_box(&body)).expect("parse");
                adp_openrtb::fast::bid_request(&dom).expect("walk").imp.len()
            })
        });
        group.bench_function("sonic_rs_skip", |b| {
            b.iter(|| sonic_rs::from_slice::<serde::de::IgnoredAny>(black_box(&body)).expect("parse"))
        });
        group.finish();
    }
}

/// Visits every key, string and integer of a sonic-rs DOM.
fn walk_sonic(v: &sonic_rs::Value, acc: &mut usize) {
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    if let Some(o) = v.as_object() {
        for (k, v) in o.iter() {
            *acc += k.len();
            walk_sonic(v, acc);
        }
    } else if let Some(a) = v.as_array() {
        for v in a.iter() {
            walk_sonic(v, acc);
        }
    } else if let Some(s) = v.as_str() {
        *acc += s.len();
    } else if let Some(n) = v.as_i64() {
        *acc = acc.wrapping_add(n as usize);
    }
}

/// The same over a simd-json tape.
fn walk_tape(v: simd_json::tape::Value<'_, '_>, acc: &mut usize) {
    use simd_json::prelude::*;
    if let Some(o) = v.as_object() {
        for (k, v) in o.iter() {
            *acc += k.len();
            walk_tape(v, acc);
        }
    } else if let Some(a) = v.as_array() {
        for v in a.iter() {
            walk_tape(v, acc);
        }
    } else if let Some(s) = v.as_str() {
        *acc += s.len();
    } else if let Some(n) = v.as_i64() {
        *acc = acc.wrapping_add(n as usize);
    }
}

fn dom(c: &mut Criterion) {
    for (label, file) in [("banner_site", "banner_site.json"), ("video_app", "video_app.json")] {
        let body = sample(file);
        let mut group = c.benchmark_group(format!("dom/{label}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        let mut want = 0;
        walk_sonic(&sonic_rs::from_slice(&body).expect("parse"), &mut want);
        group.bench_function("sonic_rs_dom", |b| {
            b.iter(|| sonic_rs::from_slice::<sonic_rs::Value>(black_box(&body)).expect("parse"))
        });
        group.bench_function("sonic_rs_dom_walk", |b| {
            b.iter(|| {
                let v: sonic_rs::Value = sonic_rs::from_slice(black_box(&body)).expect("parse");
                let mut acc = 0;
                walk_sonic(&v, &mut acc);
                assert_eq!(acc, want);
            })
        });
        // simd-json parses in place: the body is copied into a reused buffer first, as a server
        // holding the request in shared `Bytes` would have to.
        let (mut buf, mut buffers) = (Vec::new(), simd_json::Buffers::default());
        group.bench_function("simd_json_tape", |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(black_box(&body));
                let tape = simd_json::to_tape_with_buffers(&mut buf, &mut buffers).expect("parse");
                tape.as_value().as_object().map_or(0, |o| o.len())
            })
        });
        group.bench_function("simd_json_tape_walk", |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(black_box(&body));
                let tape = simd_json::to_tape_with_buffers(&mut buf, &mut buffers).expect("parse");
                let mut acc = 0;
                walk_tape(tape.as_value(), &mut acc);
                assert_eq!(acc, want);
            })
        });
        group.finish();
    }
}

fn pipeline(c: &mut Criterion) {
    let body = sample("banner_site.json");
    let mut group = c.benchmark_group("request/banner_site");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse_normalize_validate", |b| {
        b.iter(|| {
            let mut req = parse_request(black_box(&body)).expect("parse");
            req.normalize_2_5();
            req.validate().expect("valid");
            req
        })
    });
    group.finish();
}

criterion_group!(benches, parse, dom, pipeline);
criterion_main!(benches);
