//! Bid request decoding: serde_json against sonic-rs on realistic requests (minified, as
//! exchanges send them), `parse_request` (nesting guard + sonic-rs) and the bidder's
//! `parse_request_for_bidding` (the same, skipping the fields it never reads), and what the server pays
//! per request (parse, normalise, validate).
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
        // What the server calls: the nesting guard, then sonic-rs.
        group.bench_function("parse_request", |b| b.iter(|| parse_request(black_box(&body)).expect("parse")));
        // What the bidder calls: the same, skipping the fields it never reads.
        group.bench_function("parse_request_for_bidding", |b| {
            b.iter(|| parse_request_for_bidding(black_box(&body)).expect("parse"))
        });
        // Reference points: the whole body into a DOM (no types, no validation).
        group.bench_function("sonic_rs_dom", |b| {
            b.iter(|| sonic_rs::from_slice::<sonic_rs::Value>(black_box(&body)).expect("parse"))
        });
        // What the server calls: the DOM, then the read fields picked out of it.
        group.bench_function("parse_request_for_bidding_fast", |b| {
            b.iter(|| {
                let mut dom = adp_openrtb::BidDom::default();
                parse_request_for_bidding_fast(black_box(&body), &mut dom).expect("parse").imp.len()
            })
        });
        group.bench_function("sonic_rs_skip", |b| {
            b.iter(|| sonic_rs::from_slice::<serde::de::IgnoredAny>(black_box(&body)).expect("parse"))
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

criterion_group!(benches, parse, pipeline);
criterion_main!(benches);
