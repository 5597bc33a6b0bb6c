//! Bid responses built with this crate validate against the IAB OpenRTB 2.6 JSON schema
//! (`shared/openrtb/schema/BidResponse.json`, beside the repository); the 2.6 request samples
//! validate against `BidRequest.json`. The schema files `$ref` one another by relative name
//! under `https://iabtechlab.com/openrtb/2.6/`: a retriever serves them from disk, so nothing
//! is fetched over the network (the crate is built without jsonschema's HTTP resolver).
//!
//! The schema directory is `$OPENRTB_SCHEMA_DIR` if set, else `../shared/openrtb/schema` from
//! the repository root.

use adp_openrtb::price::micros_to_price;
use adp_openrtb::*;
use jsonschema::{Retrieve, Uri, Validator};
use serde_json::{json, Value};
use std::path::PathBuf;

const BASE: &str = "https://iabtechlab.com/openrtb/2.6/";

/// `$OPENRTB_SCHEMA_DIR`, else `shared/openrtb/schema` beside the repository, else the
/// machine's `/work/shared/openrtb/schema` (a clone elsewhere, e.g. in /tmp, still finds it).
fn schema_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OPENRTB_SCHEMA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/openrtb/schema");
    if beside.join("BidResponse.json").exists() {
        return beside;
    }
    PathBuf::from("/work/shared/openrtb/schema")
}

fn load(name: &str) -> Value {
    let path = schema_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the IAB schema {} ({e}); set OPENRTB_SCHEMA_DIR", path.display()));
    serde_json::from_str(&text).expect("schema is JSON")
}

/// Serves `https://iabtechlab.com/openrtb/2.6/<File>.json` from the schema directory; refuses
/// anything else.
struct DiskRetriever;

impl Retrieve for DiskRetriever {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .as_str()
            .strip_prefix(BASE)
            .filter(|n| n.ends_with(".json") && !n.contains('/'))
            .ok_or_else(|| format!("refusing to fetch {uri}"))?;
        let text = std::fs::read_to_string(schema_dir().join(name))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn validator(entry: &str) -> Validator {
    jsonschema::options()
        .with_retriever(DiskRetriever)
        .should_validate_formats(true)
        .build(&load(entry))
        .unwrap_or_else(|e| panic!("{entry}: {e}"))
}

fn assert_valid(v: &Validator, what: &str, instance: &Value) {
    let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{what} does not match the schema:\n{}\n{instance:#}", errors.join("\n"));
}

fn full_bid() -> Bid {
    Bid {
        id: "bid-1".into(),
        impid: "1".into(),
        price: micros_to_price(2_345_600),
        nurl: Some("https://ads.example/rtb/win?p=${AUCTION_PRICE}&sig=abc".into()),
        burl: Some("https://ads.example/rtb/bill?p=${AUCTION_PRICE:B64}&sig=abc".into()),
        lurl: Some("https://ads.example/rtb/loss?r=${AUCTION_LOSS}&m=${AUCTION_MIN_TO_WIN}".into()),
        adm: Some("<a href=\"https://advertiser.example/\"><img src=\"https://cdn.example/300x250.png\"></a>".into()),
        adid: Some("ad-9".into()),
        adomain: vec!["advertiser.example".into()],
        bundle: Some("com.advertiser.app".into()),
        iurl: Some("https://cdn.example/300x250.png".into()),
        cid: Some("li-42".into()),
        crid: Some("cr-7".into()),
        tactic: Some("prospecting".into()),
        cattax: Some(CategoryTaxonomy::IAB_CONTENT_2_2),
        cat: vec!["IAB2".into(), "IAB2-3".into()],
        attr: vec![CreativeAttribute::EXPANDABLE_CLICK],
        apis: vec![ApiFramework::MRAID_3_0, ApiFramework::OMID_1_0],
        api: Some(ApiFramework::MRAID_3_0),
        protocol: Some(Protocol::VAST_4_2),
        qagmediarating: Some(1),
        language: Some("en".into()),
        langb: Some("en-US".into()),
        dealid: Some("DEAL-NEWS-PREMIUM-001".into()),
        w: Some(300),
        h: Some(250),
        wratio: Some(6),
        hratio: Some(5),
        exp: Some(300),
        dur: Some(30),
        mtype: Some(MarkupType::BANNER),
        slotinpod: Some(0),
        ext: Some(json!({"adplatform": {"line_item": 42}})),
    }
}

fn responses() -> Vec<(&'static str, BidResponse)> {
    let minimal_bid = Bid { id: "b".into(), impid: "1".into(), price: 0.0, ..Bid::default() };
    let video_bid = Bid {
        id: "vb".into(),
        impid: "v1".into(),
        price: micros_to_price(12_500_000),
        adm: Some("<VAST version=\"4.2\"><Ad id=\"1\"><InLine></InLine></Ad></VAST>".into()),
        adomain: vec!["advertiser.example".into()],
        crid: Some("cr-v".into()),
        dur: Some(15),
        protocol: Some(Protocol::VAST_4_2),
        mtype: Some(MarkupType::VIDEO),
        ..Bid::default()
    };
    let native_bid = Bid {
        id: "nb".into(),
        impid: "n1".into(),
        price: micros_to_price(1),
        adm: Some(r#"{"native":{"ver":"1.2","assets":[{"id":1,"title":{"text":"Hello"}}],"link":{"url":"https://advertiser.example/"}}}"#.into()),
        mtype: Some(MarkupType::NATIVE),
        ..Bid::default()
    };
    vec![
        (
            "bid with every field",
            BidResponse {
                id: "80ce30c53c16e6ede735f123ef6e32361bfc7b22".into(),
                seatbid: vec![SeatBid {
                    bid: vec![full_bid()],
                    seat: Some("adplatform".into()),
                    group: Some(0),
                    ext: Some(json!({})),
                }],
                bidid: Some("resp-1".into()),
                cur: Some("USD".into()),
                customdata: Some("c=1".into()),
                nbr: None,
                ext: Some(json!({"took_ms": 3})),
            },
        ),
        (
            "minimal bid",
            BidResponse {
                id: "r".into(),
                seatbid: vec![SeatBid { bid: vec![minimal_bid], ..SeatBid::default() }],
                ..BidResponse::default()
            },
        ),
        (
            "two seats, video and native, nurl-only banner",
            BidResponse {
                id: "r2".into(),
                seatbid: vec![
                    SeatBid { bid: vec![video_bid, native_bid], seat: Some("seat-a".into()), ..SeatBid::default() },
                    SeatBid {
                        bid: vec![Bid {
                            id: "nurl-only".into(),
                            impid: "1".into(),
                            price: micros_to_price(999_999_999_999_999),
                            nurl: Some("https://ads.example/rtb/win?p=${AUCTION_PRICE}".into()),
                            ..Bid::default()
                        }],
                        seat: Some("seat-b".into()),
                        group: Some(1),
                        ..SeatBid::default()
                    },
                ],
                cur: Some("EUR".into()),
                ..BidResponse::default()
            },
        ),
        ("no-bid, invalid request", BidResponse::no_bid("req-1", NoBidReason::INVALID_REQUEST)),
        ("no-bid, insufficient auction time", BidResponse::no_bid("req-2", NoBidReason::INSUFFICIENT_AUCTION_TIME)),
        ("no-bid, unknown", BidResponse::no_bid("req-3", NoBidReason::UNKNOWN_ERROR)),
        ("no-bid without reason", BidResponse { id: "req-4".into(), ..BidResponse::default() }),
    ]
}

#[test]
fn every_sample_response_matches_the_iab_schema() {
    let v = validator("BidResponse.json");
    for (what, response) in responses() {
        let instance = serde_json::to_value(&response).expect("serialize");
        assert_valid(&v, what, &instance);
        // And it reads back as it was.
        let bytes = serde_json::to_vec(&response).expect("serialize");
        let back: BidResponse = serde_json::from_slice(&bytes).expect("read back");
        assert_eq!(back, response, "{what}");
    }
}

#[test]
fn every_no_bid_reason_matches_the_schema() {
    let v = validator("BidResponse.json");
    for &nbr in NoBidReason::KNOWN {
        assert_valid(&v, "no-bid", &serde_json::to_value(BidResponse::no_bid("r", nbr)).expect("serialize"));
    }
}

#[test]
fn responses_skip_unset_fields() {
    let json = serde_json::to_string(&BidResponse::no_bid("r", NoBidReason::INVALID_REQUEST)).expect("serialize");
    assert_eq!(json, r#"{"id":"r","nbr":2}"#);
    let bid = Bid { id: "b".into(), impid: "1".into(), price: micros_to_price(1_500_000), ..Bid::default() };
    assert_eq!(serde_json::to_string(&bid).expect("serialize"), r#"{"id":"b","impid":"1","price":1.5}"#);
    let full = serde_json::to_value(full_bid()).expect("serialize");
    assert_eq!(full["price"], json!(2.3456));
}

#[test]
fn the_schema_catches_a_broken_response() {
    // Guards the test itself: a validator that accepted anything would pass the others.
    let v = validator("BidResponse.json");
    let broken = json!({"id": "r", "seatbid": [{"bid": [{"id": "b", "impid": "1", "price": -1, "mtype": 9}]}]});
    assert!(!v.is_valid(&broken));
    assert!(!v.is_valid(&json!({"seatbid": []})));
    assert!(!v.is_valid(&json!({"id": "r", "seatbid": [{"bid": []}]})));
}

#[test]
fn request_samples_match_the_iab_schema() {
    let v = validator("BidRequest.json");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata");
    // The 2.6 samples are spec-conformant as sent; the 2.5 and quirk samples are not meant to
    // be, but once parsed, normalised and re-serialized every sample must be.
    for name in ["banner_site.json", "video_app.json", "native_site.json", "multiformat_audio_dooh.json"] {
        let raw: Value = serde_json::from_slice(&std::fs::read(dir.join(name)).expect("read")).expect("json");
        assert_valid(&v, name, &raw);
    }
    for entry in std::fs::read_dir(&dir).expect("testdata") {
        let path = entry.expect("entry").path();
        let body = std::fs::read(&path).expect("read");
        let mut req = parse_request(&body).expect("parse");
        req.normalize_2_5();
        let mut value = serde_json::to_value(&req).expect("serialize");
        strip_non_object_ext(&mut value);
        assert_valid(&v, &path.display().to_string(), &value);
    }
}

/// The schema types every `ext` as an object; the quirk sample deliberately carries others.
fn strip_non_object_ext(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("ext").is_some_and(|e| !e.is_object()) {
                map.remove("ext");
            }
            map.values_mut().for_each(strip_non_object_ext);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_non_object_ext),
        _ => {}
    }
}
