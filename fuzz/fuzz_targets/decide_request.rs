//! Fuzzes the decide request path end to end: parse, validate, decide on a synthetic catalog
//! and render, both as the owned answer and as the JSON the hot path writes in place. Any input must give a response or a 4xx error, never a panic.
#![no_main]

mod common;

use adp_server::serving::{parse_decide, Serving};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn serving() -> &'static Serving {
    static S: OnceLock<Serving> = OnceLock::new();
    S.get_or_init(|| common::serving(2_000))
}

fuzz_target!(|data: &[u8]| {
    // parse_decide trusts sonic-rs when it accepts: serde_json must accept the same request.
    if let Ok(fast) = sonic_rs::from_slice::<adp_server::serving::DecideRequest>(data) {
        let slow = serde_json::from_slice::<adp_server::serving::DecideRequest>(data)
            .expect("sonic-rs accepted a body serde_json refuses");
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
    }
    if let Ok(req) = parse_decide(data) {
        match serving().decide(&req) {
            Ok(resp) => assert_eq!(resp.decisions.len(), req.placements.len()),
            Err(e) => assert!(e.status.is_client_error(), "{e:?}"),
        }
        // The hot path's answer, written in place: valid JSON, one decision per placement.
        match serving().decide_json(&req) {
            Ok(json) => {
                let v: serde_json::Value = serde_json::from_slice(&json).expect("decide_json wrote valid JSON");
                assert_eq!(v["decisions"].as_array().map(Vec::len), Some(req.placements.len()));
            }
            Err(e) => assert!(e.status.is_client_error(), "{e:?}"),
        }
    }
});
