//! Fuzzes the tracking-URL verifier: arbitrary `p` and `s` must be refused or accepted
//! without panicking, and a URL this signer made must verify to exactly what was signed.
#![no_main]

use adp_server::tracking::{TrackKind, TrackedAd, UrlSigner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let signer = UrlSigner::new(vec![("fuzz".into(), b"fuzz-signing-key-0123456789".to_vec())]).expect("key");
    let text = String::from_utf8_lossy(data);
    let (p, s) = text.split_once('&').unwrap_or((&text, ""));
    let _ = signer.verify(TrackKind::Impression, p, s, 1_800_000_000);
    let _ = signer.verify(TrackKind::Click, p, s, 1_800_000_000);
    // Round trip with fuzzed field contents.
    let field = |i: usize| text.split('|').nth(i).unwrap_or("").to_string();
    let ad = TrackedAd {
        kind: TrackKind::Click,
        key_id: "fuzz".into(),
        expires_at: 1_900_000_000,
        request_id: field(0),
        decision_id: field(5),
        slot: 3,
        advertiser_id: field(1),
        campaign_id: field(2),
        line_item_id: field(3),
        creative_id: field(4),
        publisher_id: String::new(),
        site_id: String::new(),
        placement_id: String::new(),
        user_key: 7,
        price_micros: 1,
        cost_micros: 2,
        pending_minute: 3,
        deal_id: String::new(),
        currency: String::new(),
        landing_url: text.to_string(),
    };
    // The v5 tracker pair and notices (binary payload): any field contents round-trip, '|'
    // included, and a pair's impression signature never passes as its click.
    let mut p5 = String::new();
    let [imp, click] = signer.sign_trackers(&ad.fields(), 9, &mut p5);
    if p5.len() <= adp_server::tracking::MAX_PAYLOAD_LEN {
        let back = signer.verify(TrackKind::Click, &p5, &click, 1_800_000_000).expect("own v5 click verifies");
        assert_eq!(back, TrackedAd { cost_micros: 9, ..ad.clone() });
        let back = signer.verify(TrackKind::Impression, &p5, &imp, 1_800_000_000).expect("own v5 impression verifies");
        assert_eq!(back, TrackedAd { kind: TrackKind::Impression, ..ad.clone() });
        assert!(signer.verify(TrackKind::Click, &p5, &imp, 1_800_000_000).is_err());
        let (pn, [_, bill, _]) = signer.sign_notices(&ad.fields());
        let back = signer.verify(TrackKind::Billing, &pn, &bill, 1_800_000_000).expect("own v5 notice verifies");
        assert_eq!(back, TrackedAd { kind: TrackKind::Billing, ..ad.clone() });
    }
    let query = signer.sign(&ad);
    let (p, s) = query.strip_prefix("p=").and_then(|q| q.split_once("&s=")).expect("signed query");
    if ad.request_id.contains('|')
        || ad.decision_id.contains('|')
        || ad.advertiser_id.contains('|')
        || ad.campaign_id.contains('|')
        || ad.line_item_id.contains('|')
        || ad.creative_id.contains('|')
        || p.len() > adp_server::tracking::MAX_PAYLOAD_LEN
    {
        return; // ids never contain '|' (validated on write); oversized payloads are refused by design
    }
    let back = signer.verify(TrackKind::Click, p, s, 1_800_000_000).expect("own URL verifies");
    assert_eq!(back, ad);
});
