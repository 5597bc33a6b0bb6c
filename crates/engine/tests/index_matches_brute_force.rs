//! Property: on random catalogs and random requests, the compiled index returns exactly the
//! line items that evaluating every expression directly returns.

use adp_domain::targeting::{Daypart, DaypartWindow, DeviceType, KeyValues, Weekday};
use adp_domain::Expr;
use adp_engine::eval::eval;
use adp_engine::index::{Scratch, TargetingIndex};
use adp_engine::request::{Attributes, MatchInput, Slot};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use std::collections::BTreeSet;

fn pick(vocab: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(vocab).prop_map(str::to_string)
}

fn set(vocab: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(pick(vocab), 1..3)
}

const COUNTRIES: &[&str] = &["US", "DE", "FR", "GB"];
const SMALL: &[&str] = &["a", "b", "c"];
const SIZES: &[&str] = &["300x250", "728x90", "320x50"];
const PLACEMENTS: &[&str] = &["p1", "p2", "p3"];
const NETS: &[&str] = &["10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24", "2001:db8::/32"];
const IPS: &[&str] = &["10.1.2.3", "10.2.0.1", "192.0.2.9", "8.8.8.8", "2001:db8::1"];
const ZONES: &[&str] = &["UTC", "Europe/Berlin", "America/New_York"];
const DEVICES: &[DeviceType] = &[DeviceType::Phone, DeviceType::Tablet, DeviceType::Desktop];
const DAYS: &[Weekday] =
    &[Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        set(COUNTRIES).prop_map(Expr::Country),
        set(SMALL).prop_map(Expr::Region),
        set(SMALL).prop_map(Expr::City),
        set(SMALL).prop_map(Expr::Metro),
        proptest::collection::vec(proptest::sample::select(DEVICES), 1..3).prop_map(Expr::DeviceType),
        set(SMALL).prop_map(Expr::Os),
        set(SMALL).prop_map(Expr::Browser),
        set(SMALL).prop_map(Expr::Domain),
        set(SMALL).prop_map(Expr::AppBundle),
        set(PLACEMENTS).prop_map(Expr::Placement),
        set(SIZES).prop_map(Expr::Size),
        set(SMALL).prop_map(Expr::Language),
        (pick(SMALL), set(SMALL)).prop_map(|(key, values)| Expr::KeyValue(KeyValues { key, values })),
        set(SMALL).prop_map(Expr::Segment),
        set(SMALL).prop_map(Expr::Deal),
        set(NETS).prop_map(Expr::IpCidr),
        (
            pick(ZONES),
            proptest::collection::vec(
                (proptest::collection::vec(proptest::sample::select(DAYS), 1..4), 0u8..23, 1u8..12),
                1..3
            )
        )
            .prop_map(|(time_zone, ws)| Expr::Daypart(Daypart {
                time_zone,
                windows: ws
                    .into_iter()
                    .map(|(days, start_hour, len)| DaypartWindow {
                        days,
                        start_hour,
                        end_hour: (start_hour + len).min(24)
                    })
                    .collect(),
            })),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 48, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..4).prop_map(Expr::All),
            proptest::collection::vec(inner.clone(), 1..4).prop_map(Expr::Any),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

fn maybe(vocab: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(pick(vocab))
}

fn request() -> impl Strategy<Value = (Attributes, Slot, i64)> {
    let geo = (maybe(COUNTRIES), maybe(SMALL), maybe(SMALL), maybe(SMALL));
    let device = (proptest::option::of(proptest::sample::select(DEVICES)), maybe(SMALL), maybe(SMALL));
    let site = (maybe(SMALL), maybe(SMALL), maybe(SMALL));
    let lists = (
        proptest::collection::vec((pick(SMALL), pick(SMALL)), 0..3),
        proptest::collection::vec(pick(SMALL), 0..3),
        proptest::collection::vec(pick(SMALL), 0..2),
        proptest::option::of(pick(IPS)),
    );
    let slot = (pick(PLACEMENTS), proptest::collection::vec(pick(SIZES), 0..3));
    (geo, device, site, lists, slot, 0i64..(14 * 86_400)).prop_map(
        |(
            (country, region, city, metro),
            (device_type, os, browser),
            (domain, app_bundle, language),
            (kv, seg, deals, ip),
            (p, sizes),
            t,
        )| {
            let attrs = Attributes {
                country,
                region,
                city,
                metro,
                device_type,
                os,
                browser,
                domain,
                app_bundle,
                language,
                key_values: kv,
                segments: seg,
                deals,
                ip: ip.and_then(|s| s.parse().ok()),
                crawler: false,
            };
            (attrs, Slot { placement_id: p, sizes: sizes.into() }, 1_790_000_000 + t)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn index_agrees_with_brute_force(
        catalog in proptest::collection::vec(proptest::option::weighted(0.85, expr()), 1..40),
        requests in proptest::collection::vec(request(), 1..12),
    ) {
        let index = TargetingIndex::build(catalog.len(), catalog.iter().enumerate().map(|(i, e)| (i as u32, e.as_ref())));
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        for (attrs, slot, t) in &requests {
            let now = Utc.timestamp_opt(*t, 0).single().expect("time");
            let input = MatchInput { attrs, slot, now };
            out.clear();
            index.matches(&input, &mut scratch, &mut out);
            let got: BTreeSet<u32> = out.iter().copied().collect();
            prop_assert_eq!(got.len(), out.len(), "an item was returned twice");
            let want: BTreeSet<u32> = catalog
                .iter()
                .enumerate()
                .filter(|(_, e)| e.as_ref().is_none_or(|e| eval(e, &input)))
                .map(|(i, _)| i as u32)
                .collect();
            // The per-item check (used by the ranked fast path) agrees item by item.
            index.prepare(&input, &mut scratch);
            for item in 0..catalog.len() as u32 {
                prop_assert_eq!(index.item_matches(item, &input, &mut scratch), want.contains(&item), "item {}", item);
                if want.contains(&item) {
                    prop_assert!(index.could_match_slot(item, &slot.placement_id, &slot.sizes), "static slot filter dropped {}", item);
                }
            }
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn large_expressions_fall_back_to_direct_evaluation() {
    let any = |v: &[&str]| Expr::Any(v.iter().map(|c| Expr::Country(vec![c.to_string()])).collect());
    // (4 alternatives)^4 = 256 conjunctions: over the DNF limit, so scanned — and still exact.
    let big = Expr::All(vec![any(COUNTRIES), any(COUNTRIES), any(COUNTRIES), any(COUNTRIES)]);
    let index = TargetingIndex::build(2, [(0, Some(&big)), (1, None)]);
    assert_eq!(index.stats().scanned, 1);
    let attrs = Attributes { country: Some("DE".into()), ..Default::default() };
    let slot = Slot::default();
    let mut out = Vec::new();
    index.matches(&MatchInput { attrs: &attrs, slot: &slot, now: Utc::now() }, &mut Scratch::default(), &mut out);
    out.sort_unstable();
    assert_eq!(out, vec![0, 1]);
}

#[test]
fn requests_touch_only_their_posting_lists() {
    // 10k line items each targeting its own segment: a request with one segment matches one.
    let exprs: Vec<Expr> = (0..10_000).map(|i| Expr::Segment(vec![format!("seg-{i}")])).collect();
    let index = TargetingIndex::build(exprs.len(), exprs.iter().enumerate().map(|(i, e)| (i as u32, Some(e))));
    let stats = index.stats();
    assert_eq!((stats.conjunctions, stats.always_candidates, stats.scanned), (10_000, 0, 0));
    let attrs = Attributes { segments: vec!["seg-4242".into()], ..Default::default() };
    let mut out = Vec::new();
    index.matches(
        &MatchInput { attrs: &attrs, slot: &Slot::default(), now: Utc::now() },
        &mut Scratch::default(),
        &mut out,
    );
    assert_eq!(out, vec![4242]);
}
