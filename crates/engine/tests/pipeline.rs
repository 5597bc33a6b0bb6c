//! The selection pipeline on small hand-made catalogs: auction prices, tiers, share of voice,
//! floors, one advertiser per page, frequency caps and budgets.

use adp_domain::{Kind, Record};
use adp_engine::delivery::CounterRegistry;
use adp_engine::pipeline::{decide, DealOffer, DecideInput, EngineScratch, NoFill, SlotChannel, SlotRequest, Win};
use adp_engine::request::{Attributes, Slot};
use adp_engine::snapshot::Snapshot;
use adp_engine::synth::UnlimitedCaps;
use adp_store::InProcessFrequency;
use chrono::Utc;
use serde_json::{json, Value};

use adp_engine::synth::record as rec;

/// A site with placements `sp` (second price, floor 0.5) and `fp` (first price); advertisers
/// a0..a{n} each with a campaign and an MREC creative.
fn base(advertisers: usize) -> Vec<Record> {
    let mut out = vec![
        rec(Kind::Publisher, "pub", "pub", json!({"name": "p"})),
        rec(
            Kind::Site,
            "site",
            "pub",
            json!({"publisher_id": "pub", "name": "s", "kind": "site", "domain": "x.example"}),
        ),
    ];
    for (id, at) in [("sp", "second_price"), ("fp", "first_price"), ("sp2", "second_price")] {
        out.push(rec(
            Kind::Placement,
            id,
            "pub",
            json!({"site_id": "site", "name": id, "sizes": [{"w": 300, "h": 250}],
            "formats": ["banner"], "floor_micros": 500_000, "auction_type": at}),
        ));
    }
    for a in 0..advertisers {
        let adv = format!("a{a}");
        out.push(rec(Kind::Advertiser, &adv, &adv, json!({"name": adv})));
        out.push(rec(
            Kind::Campaign,
            &format!("c{a}"),
            &adv,
            json!({"advertiser_id": adv, "name": "c", "start": "2026-01-01T00:00:00Z"}),
        ));
        out.push(rec(
            Kind::Creative,
            &format!("cr{a}"),
            &adv,
            json!({"advertiser_id": adv, "name": "m", "approval": "approved",
            "content": {"banner_image": {"image_url": "https://x.example/a.png"}}, "sizes": [{"w": 300, "h": 250}],
            "click_url": "https://x.example/", "landing_domain": "x.example"}),
        ));
    }
    out
}

fn li(id: &str, a: usize, extra: Value) -> Record {
    let mut v = json!({"campaign_id": format!("c{a}"), "name": id, "start": "2026-01-01T00:00:00Z", "pricing": "cpm",
        "rate_micros": 1_000_000, "pacing": "asap", "creatives": [{"creative_id": format!("cr{a}")}]});
    if let (Some(dst), Value::Object(src)) = (v.as_object_mut(), extra) {
        dst.extend(src);
    }
    rec(Kind::LineItem, id, &format!("a{a}"), v)
}

fn run(
    snap: &Snapshot,
    placements: &[&str],
    user: Option<u64>,
    caps: &dyn adp_domain::FrequencyStore,
    s: &mut EngineScratch,
) -> Vec<Result<Win, NoFill>> {
    let attrs = Attributes::default();
    let slots: Vec<SlotRequest<'_>> = placements
        .iter()
        .map(|p| SlotRequest {
            placement: snap.placements.get(*p),
            slot: Slot { placement_id: p.to_string(), sizes: vec!["300x250".into()].into() },
            channel: Default::default(),
        })
        .collect();
    let input = DecideInput { attrs: &attrs, user_key: user, now: Utc::now(), slots: &slots, dry_run: false };
    let mut out = Vec::new();
    decide(snap, &input, caps, s, &mut out);
    out
}

fn id_of(snap: &Snapshot, w: &Win) -> String {
    snap.line_items[w.line_item as usize].id.clone()
}

#[test]
fn second_price_clears_one_micro_above_the_runner_up_and_first_price_at_the_bid() {
    let mut cat = base(2);
    cat.push(li("high", 0, json!({"rate_micros": 3_000_000})));
    cat.push(li("low", 1, json!({"rate_micros": 2_000_000})));
    let snap = Snapshot::build(1, &cat, &CounterRegistry::default());
    let mut s = EngineScratch::seeded(3);
    let out = run(&snap, &["sp"], None, &UnlimitedCaps, &mut s);
    let w = out[0].as_ref().expect("filled");
    assert_eq!((id_of(&snap, w).as_str(), w.price_micros, w.bid_micros), ("high", 2_000_001, 3_000_000));
    assert_eq!(w.cost_per_impression, 2_000, "CPM price / 1000 per impression");
    let out = run(&snap, &["fp"], None, &UnlimitedCaps, &mut s);
    assert_eq!(out[0].as_ref().expect("filled").price_micros, 3_000_000);
}

#[test]
fn a_lone_bidder_clears_at_the_floor_and_bids_below_it_do_not_serve() {
    let mut cat = base(2);
    cat.push(li("only", 0, json!({"rate_micros": 3_000_000})));
    cat.push(li("cheap", 1, json!({"rate_micros": 400_000})));
    let snap = Snapshot::build(1, &cat, &CounterRegistry::default());
    let mut s = EngineScratch::seeded(3);
    let w = run(&snap, &["sp"], None, &UnlimitedCaps, &mut s).remove(0).expect("filled");
    assert_eq!(w.price_micros, 500_000, "runner-up below the floor: clears at the floor");
    let mut cat = base(1);
    cat.push(li("cheap", 0, json!({"rate_micros": 400_000})));
    let snap = Snapshot::build(1, &cat, &CounterRegistry::default());
    assert_eq!(run(&snap, &["sp"], None, &UnlimitedCaps, &mut s)[0], Err(NoFill::BelowFloor));
}

#[test]
fn tiers_outrank_price_and_flat_sponsorships_take_their_share_of_voice() {
    let mut cat = base(3);
    cat.push(li("rich", 0, json!({"rate_micros": 50_000_000})));
    cat.push(li(
        "sponsor",
        1,
        json!({"priority": "sponsorship", "pricing": "flat", "rate_micros": 1, "sov_percent": 30}),
    ));
    cat.push(li("house", 2, json!({"priority": "house", "rate_micros": 0})));
    let snap = Snapshot::build(1, &cat, &CounterRegistry::default());
    let mut s = EngineScratch::seeded(11);
    let n = 4000;
    let mut sponsor = 0;
    for _ in 0..n {
        let w = run(&snap, &["sp"], None, &UnlimitedCaps, &mut s).remove(0).expect("filled");
        match id_of(&snap, &w).as_str() {
            "sponsor" => {
                sponsor += 1;
                assert_eq!(w.price_micros, 0, "flat line items are not charged per impression");
            }
            "rich" => {}
            other => panic!("{other} must never beat a standard line item"),
        }
    }
    let share = f64::from(sponsor) / f64::from(n);
    assert!((0.27..0.33).contains(&share), "sponsorship share of voice {share}");
}

#[test]
fn one_advertiser_per_page_unless_the_placement_allows_it() {
    let mut cat = base(2);
    cat.push(li("a0-1", 0, json!({"rate_micros": 5_000_000})));
    cat.push(li("a0-2", 0, json!({"rate_micros": 4_000_000})));
    cat.push(li("a1-1", 1, json!({"rate_micros": 1_000_000})));
    let snap = Snapshot::build(1, &cat, &CounterRegistry::default());
    let mut s = EngineScratch::seeded(5);
    let out = run(&snap, &["sp", "sp2"], None, &UnlimitedCaps, &mut s);
    let ids: Vec<String> = out.iter().map(|o| id_of(&snap, o.as_ref().expect("filled"))).collect();
    assert_eq!(ids, vec!["a0-1", "a1-1"]);
}

#[test]
fn frequency_caps_and_budgets_stop_delivery() {
    let mut cat = base(2);
    cat.push(li("capped", 0, json!({"rate_micros": 9_000_000, "frequency_caps": [{"count": 3, "window": "day"}]})));
    cat.push(li("budgeted", 1, json!({"rate_micros": 2_000_000, "budget": {"daily_micros": 10_000}})));
    let snap = Snapshot::build(1, &cat, &CounterRegistry::default());
    let caps = InProcessFrequency::new(10_000, 4);
    let mut s = EngineScratch::seeded(5);
    let mut seen = Vec::new();
    for _ in 0..25 {
        seen.push(match run(&snap, &["sp"], Some(42), &caps, &mut s).remove(0) {
            Ok(w) => id_of(&snap, &w),
            Err(e) => e.code().to_string(),
        });
    }
    assert_eq!(seen.iter().filter(|s| *s == "capped").count(), 3, "{seen:?}");
    // Alone, "budgeted" clears at the 0.5 CPM floor and reserves 500 micros per decision as
    // pending; the check adds one impression at its own rate (2,000): 500 k + 2,000 ≤ 10,000
    // holds for k = 0..=16, so 17 decisions, then the budget is exhausted.
    assert_eq!(seen.iter().filter(|s| *s == "budgeted").count(), 17, "{seen:?}");
    // Nothing is left: the no-fill reason is that of the best-ranked candidate.
    assert_eq!(seen.last().map(String::as_str), Some("frequency_capped"), "{seen:?}");
}

#[test]
fn the_ranked_fast_path_decides_like_the_exhaustive_path() {
    for (profile, seed) in [(adp_engine::synth::Profile::Inventory, 1u64), (adp_engine::synth::Profile::Broad, 2)] {
        let snap = Snapshot::build(1, &adp_engine::synth::catalog(3_000, seed, profile), &CounterRegistry::default());
        let requests = adp_engine::synth::requests(1500, seed + 10);
        let mut fast = EngineScratch::seeded(9);
        let mut full = EngineScratch::seeded(9);
        full.exhaustive = true;
        let now = Utc::now();
        let (mut compared, mut filled) = (0, 0);
        for (i, (attrs, slot)) in requests.iter().enumerate() {
            let slots = [SlotRequest {
                placement: snap.placements.get(&slot.placement_id),
                slot: slot.clone(),
                channel: Default::default(),
            }];
            let input = DecideInput { attrs, user_key: Some(i as u64), now, slots: &slots, dry_run: true };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            decide(&snap, &input, &UnlimitedCaps, &mut fast, &mut a);
            decide(&snap, &input, &UnlimitedCaps, &mut full, &mut b);
            match (&a[0], &b[0]) {
                (Ok(x), Ok(y)) => {
                    let (lx, ly) = (&snap.line_items[x.line_item as usize], &snap.line_items[y.line_item as usize]);
                    assert_eq!(
                        (lx.priority, x.bid_micros, x.price_micros),
                        (ly.priority, y.bid_micros, y.price_micros),
                        "request {i}"
                    );
                    filled += 1;
                }
                (Err(_), Err(_)) => {}
                (x, y) => panic!("request {i}: fast {x:?} vs exhaustive {y:?}"),
            }
            compared += 1;
        }
        assert_eq!(compared, 1500);
        assert!(filled > 1000, "{profile:?}: most requests fill ({filled})");
    }
}

fn run_rtb(
    snap: &Snapshot,
    placement: &str,
    deals: Vec<DealOffer>,
    private_auction: bool,
    user: Option<u64>,
    caps: &dyn adp_domain::FrequencyStore,
) -> Result<Win, NoFill> {
    let attrs = Attributes::default();
    let slots = [SlotRequest {
        placement: snap.placements.get(placement),
        slot: Slot { placement_id: placement.to_string(), sizes: vec!["300x250".into()].into() },
        channel: SlotChannel::Rtb { deals, private_auction },
    }];
    let input = DecideInput { attrs: &attrs, user_key: user, now: Utc::now(), slots: &slots, dry_run: false };
    let mut out = Vec::new();
    decide(snap, &input, caps, &mut EngineScratch::seeded(7), &mut out);
    out.pop().unwrap_or(Err(NoFill::UnknownPlacement))
}

fn deal(id: &str, floor_micros: i64) -> DealOffer {
    DealOffer { id: id.into(), floor_micros }
}

#[test]
fn rtb_bids_only_with_rtb_line_items_at_their_own_price() {
    let mut cat = base(3);
    cat.push(li("direct", 0, json!({"rate_micros": 9_000_000})));
    cat.push(li("rtb-open", 1, json!({"rate_micros": 2_000_000, "channels": ["rtb"]})));
    cat.push(li("rtb-low", 2, json!({"rate_micros": 1_500_000, "channels": ["direct", "rtb"]})));
    let snap = Snapshot::build(1, &cat, &CounterRegistry::default());
    // Direct serving never sees the RTB-only line item; RTB never sees the direct-only one.
    let direct = run(&snap, &["sp"], None, &UnlimitedCaps, &mut EngineScratch::seeded(1));
    assert_eq!(direct[0].as_ref().map(|w| id_of(&snap, w)), Ok("direct".to_string()));
    let w = run_rtb(&snap, "sp", vec![], false, None, &UnlimitedCaps).expect("a bid");
    assert_eq!(id_of(&snap, &w), "rtb-open");
    // The bid is the line item's own eCPM (no second-price discount: the exchange clears it).
    assert_eq!(w.price_micros, 2_000_000);
    assert_eq!(w.cost_per_impression, 2_000);
    assert_eq!(w.deal, None);
}

#[test]
fn rtb_deals_bind_their_line_items_and_private_auctions_shut_out_the_rest() {
    let mut cat = base(2);
    cat.push(li("open", 0, json!({"rate_micros": 3_000_000, "channels": ["rtb"]})));
    cat.push(li("deal", 1, json!({"rate_micros": 2_000_000, "channels": ["rtb"], "deal_ids": ["D1"]})));
    let snap = Snapshot::build(1, &cat, &CounterRegistry::default());
    // Without its deal on offer the deal line item does not bid; the open one does.
    let w = run_rtb(&snap, "sp", vec![], false, None, &UnlimitedCaps).expect("a bid");
    assert_eq!(id_of(&snap, &w), "open");
    // A private auction for D1: only the deal line item, on its deal.
    let w = run_rtb(&snap, "sp", vec![deal("X", 0), deal("D1", 1_000_000)], true, None, &UnlimitedCaps)
        .expect("a deal bid");
    assert_eq!((id_of(&snap, &w), w.deal), ("deal".to_string(), Some(1)));
    // A private auction for another deal: nobody may bid.
    assert_eq!(run_rtb(&snap, "sp", vec![deal("X", 0)], true, None, &UnlimitedCaps), Err(NoFill::NoMatchingDeal));
    // The deal's floor binds the deal bid: above its rate, no bid.
    assert_eq!(run_rtb(&snap, "sp", vec![deal("D1", 2_500_000)], true, None, &UnlimitedCaps), Err(NoFill::BelowFloor));
}

#[test]
fn rtb_floors_bind_and_caps_are_checked_but_not_counted_by_bids() {
    let mut cat = base(1);
    cat.push(li(
        "capped",
        0,
        json!({"rate_micros": 1_000_000, "channels": ["rtb"],
        "frequency_caps": [{"count": 1, "window": "day"}]}),
    ));
    let snap = Snapshot::build(1, &cat, &CounterRegistry::default());
    // The placement's floor is 0.5; the line item bids 1.0.
    let freq = InProcessFrequency::new(1000, 4);
    for _ in 0..3 {
        // Bids do not use up the cap: only a won impression (counted by the notice) does.
        assert!(run_rtb(&snap, "sp", vec![], false, Some(42), &freq).is_ok());
    }
    let caps = &snap.line_items[0].caps;
    assert!(adp_domain::FrequencyStore::try_count(&freq, 42, caps, Utc::now().timestamp()));
    assert_eq!(run_rtb(&snap, "sp", vec![], false, Some(42), &freq), Err(NoFill::FrequencyCapped));
    let mut cat = base(1);
    cat.push(li("cheap", 0, json!({"rate_micros": 400_000, "channels": ["rtb"]})));
    let snap = Snapshot::build(1, &cat, &CounterRegistry::default());
    assert_eq!(run_rtb(&snap, "sp", vec![], false, None, &UnlimitedCaps), Err(NoFill::BelowFloor));
}
