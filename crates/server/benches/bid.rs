//! The bidder's own work on one request, in process: the fast parse with 2.5 normalisation and
//! validation, the bid (engine, signed notices, click tracker, the bid event handed to the log)
//! and the answer's JSON; then each part alone. Runs on the demo catalog, with its RTB budgets
//! lifted as `bench/unlimit_budgets.py` lifts them for the HTTP benchmarks (every bid reserves
//! spend until its notices, and a benchmark sends none). The events go to a real local event
//! log in a temporary directory (a full run writes a few hundred MB there; it is removed at the
//! end). The request and user are the same on every iteration, so the per-thread caches stay
//! warm: a best case.
//!
//! `cargo bench -p adp-server --bench bid`: unpinned, the log's writer thread runs on the other
//! core and `bid` times the serving thread's own work. Pinned to one core (`taskset -c 1`) the
//! writer shares it, as in `scripts/bench-http.sh`, and the times move more. On the 2-core VM
//! of session 19 a run's interval was about ±1%, but runs minutes apart differed by up to 7%:
//! compare builds in alternating runs, as with `scripts/bench-ab.sh`.

use adp_domain::CatalogStore;
use adp_server::auth::Principal;
use adp_server::catalog::{CatalogService, ChangeFeed};
use adp_server::serving::{Serving, ServingSettings};
use adp_server::tracking::UrlSigner;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The demo line items that bid, as `bench/unlimit_budgets.py` lists them.
const RTB_LINE_ITEMS: [&str; 4] =
    ["demo-acme-ron", "demo-globex-preroll", "demo-globex-rtb-video", "demo-initech-native-rtb"];

/// A serving state on the demo catalog with unlimited RTB budgets (SQLite and the event log in
/// `dir`).
async fn demo_serving(dir: &Path) -> Serving {
    let store: Arc<dyn CatalogStore> =
        Arc::new(adp_store::sqlite::SqliteStore::open_in_dir(dir).expect("catalog store"));
    store.migrate().await.expect("migrated");
    let catalog = CatalogService::new(Arc::clone(&store), ChangeFeed::new(0));
    adp_server::demo::seed_if_empty(&catalog, store.as_ref()).await.expect("demo seeded");
    let admin = Principal::Admin { key_id: "bench".into() };
    let huge = 1_000_000_000_000_000i64;
    let mut campaigns = Vec::new();
    for id in RTB_LINE_ITEMS {
        let li = adp_server::catalog::record_json(
            &catalog.get(&admin, adp_domain::Kind::LineItem, id).await.expect("demo line item"),
        );
        let mut budget = li["budget"].clone();
        budget["daily_micros"] = json!(huge);
        if !budget["lifetime_micros"].is_null() {
            budget["lifetime_micros"] = json!(huge);
        }
        catalog
            .patch(&admin, adp_domain::Kind::LineItem, id, json!({"version": li["version"], "budget": budget}), None)
            .await
            .expect("line item budget lifted");
        campaigns.push(li["campaign_id"].as_str().expect("campaign id").to_string());
    }
    campaigns.sort();
    campaigns.dedup();
    for id in campaigns {
        let c = adp_server::catalog::record_json(
            &catalog.get(&admin, adp_domain::Kind::Campaign, &id).await.expect("demo campaign"),
        );
        if !c["budget_micros"].is_null() {
            catalog
                .patch(
                    &admin,
                    adp_domain::Kind::Campaign,
                    &id,
                    json!({"version": c["version"], "budget_micros": huge}),
                    None,
                )
                .await
                .expect("campaign budget lifted");
        }
    }
    let signer = UrlSigner::new(vec![("k1".into(), b"bench-signing-secret-0123456789".to_vec())]).expect("keys");
    let serving = Serving::with_local_log(
        ServingSettings { public_url: "https://ads.example.com".into(), ..ServingSettings::default() },
        signer,
        &dir.join("events"),
    )
    .expect("event log");
    serving.refresh(store.as_ref()).await.expect("snapshot");
    serving
}

/// An OpenRTB sample, compact, as the HTTP benchmarks send it (`bench/bid_body.py`); with
/// `tagid`, its first imp is for that placement of the catalog (the samples' own tag ids are
/// not the demo's: those imps are described by the request alone).
fn sample(name: &str, tagid: Option<&str>) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openrtb/testdata").join(name);
    let mut req: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read sample")).expect("sample is JSON");
    req["id"] = json!("bench-request-0001");
    req["user"]["id"] = json!("bench-user-0001");
    if let Some(tagid) = tagid {
        req["imp"][0]["tagid"] = json!(tagid);
    }
    serde_json::to_vec(&req).expect("JSON")
}

fn answer(resp: &adp_openrtb::BidResponse) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4096);
    sonic_rs::to_writer(&mut bytes, resp).expect("answer serialisable");
    bytes
}

fn bid(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let serving = rt.block_on(demo_serving(dir.path()));
    for (label, file, tagid) in [
        ("banner_site", "banner_site.json", None),
        ("banner_site_on_demo_mrec", "banner_site.json", Some("demo-mrec")),
        ("video_app", "video_app.json", None),
    ] {
        let body = sample(file, tagid);
        let mut dom = adp_openrtb::BidDom::default();
        let mut req = adp_openrtb::parse_request_for_bidding_fast(&body, &mut dom).expect("sample parses");
        req.normalize_2_5();
        req.validate().expect("sample is valid");
        let resp = serving.bid(&req, None).expect("the demo catalog bids on the sample");
        assert!(resp.has_bids(), "{label}: no bid");
        let mut group = c.benchmark_group(format!("bid/{label}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function("parse_bid_answer", |b| {
            let mut dom = adp_openrtb::BidDom::default();
            b.iter(|| {
                let mut req = adp_openrtb::parse_request_for_bidding_fast(black_box(&body), &mut dom).expect("parse");
                req.normalize_2_5();
                req.validate().expect("valid");
                let resp = serving.bid(&req, None).expect("bid");
                answer(&resp).len()
            })
        });
        group.bench_function("bid", |b| b.iter(|| serving.bid(black_box(&req), None).expect("bid")));
        group.bench_function("answer", |b| b.iter(|| answer(black_box(&resp)).len()));
        group.finish();
    }
}

criterion_group!(benches, bid);
criterion_main!(benches);
