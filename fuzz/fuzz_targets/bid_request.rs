//! Fuzzes the OpenRTB bid request path: parse (sonic-rs, with its nesting guard and serde_json
//! fallback), 2.5 normalisation, validation, and a bid on a synthetic catalog. Any input must
//! give a bid, a no-bid or a 4xx-style error, never a panic; and whatever sonic-rs accepts,
//! serde_json accepts too and reads the same (the server parses with sonic-rs, the tests and
//! the error messages use serde_json); and the bidder's parse, which skips the fields it never
//! reads, takes whatever the full parse takes; and its fast form (a simd-json tape, then the read fields
//! picked out by hand), which the server calls, returns exactly what it returns.
#![no_main]

mod common;

use adp_server::serving::Serving;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn serving() -> &'static Serving {
    static S: OnceLock<Serving> = OnceLock::new();
    S.get_or_init(|| common::serving(500))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(fast) = adp_openrtb::parse_request_sonic(data) {
        let slow = adp_openrtb::parse_request_serde_json(data).expect("serde_json refused what sonic-rs accepted");
        assert_eq!(fast, slow, "sonic-rs and serde_json read the request differently");
    }
    // The server bids on the bidder's parse.
    let bidding = adp_openrtb::parse_request_for_bidding(data);
    if adp_openrtb::parse_request(data).is_ok() {
        assert!(bidding.is_ok(), "the bidder's parse refused what the full parse takes");
    }
    let mut dom = adp_openrtb::BidDom::default();
    assert_eq!(
        adp_openrtb::parse_request_for_bidding_fast(data, &mut dom),
        bidding,
        "the fast parse and the bidder's parse differ"
    );
    let mut req = match bidding {
        Ok(r) => r,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    req.normalize_2_5();
    if let Err(e) = req.validate() {
        let _ = (e.reason.as_str(), e.reason.message(), e.path);
        return;
    }
    let _ = serving().bid(&req, None);
});
