//! `BidRequest::validate`: each rule, the path it blames and the reason code (table test).

use adp_openrtb::{parse_request, NoBidReason, ValidationReason};

const OK_BANNER: &str = r#"{"id":"b","banner":{"w":300,"h":250}}"#;

fn body(imps: &[&str], extra: &str) -> String {
    format!(r#"{{"id":"req-1","imp":[{}]{extra}}}"#, imps.join(","))
}

/// (what, request body, expected (reason, path) or valid).
type Case = (&'static str, String, Option<(ValidationReason, &'static str)>);

#[test]
fn rules_table() {
    use ValidationReason::*;
    let cases: Vec<Case> = vec![
        ("minimal banner", body(&[OK_BANNER], ""), None),
        ("missing id", r#"{"imp":[{"id":"1","banner":{"w":1,"h":1}}]}"#.into(), Some((MissingId, "id"))),
        ("empty id", r#"{"id":"","imp":[{"id":"1","banner":{"w":1,"h":1}}]}"#.into(), Some((MissingId, "id"))),
        ("null id", r#"{"id":null,"imp":[{"id":"1","banner":{"w":1,"h":1}}]}"#.into(), Some((MissingId, "id"))),
        ("no imp", r#"{"id":"r"}"#.into(), Some((NoImpressions, "imp"))),
        ("empty imp", r#"{"id":"r","imp":[]}"#.into(), Some((NoImpressions, "imp"))),
        ("imp without id", body(&[OK_BANNER, r#"{"banner":{"w":1,"h":1}}"#], ""), Some((MissingImpId, "imp[1].id"))),
        (
            "duplicate imp id",
            body(&[OK_BANNER, r#"{"id":"x","native":{"request":"{}"}}"#, OK_BANNER], ""),
            Some((DuplicateImpId, "imp[2].id")),
        ),
        ("no media", body(&[OK_BANNER, r#"{"id":"c","tagid":"t"}"#], ""), Some((NoMediaObject, "imp[1]"))),
        (
            "video without mimes",
            body(&[OK_BANNER, r#"{"id":"v","video":{"w":640,"h":480}}"#], ""),
            Some((MissingVideoMimes, "imp[1].video.mimes")),
        ),
        (
            "video with empty mimes",
            body(&[r#"{"id":"v","video":{"mimes":[]}}"#], ""),
            Some((MissingVideoMimes, "imp[0].video.mimes")),
        ),
        (
            "video with blank mime",
            body(&[r#"{"id":"v","video":{"mimes":[""]}}"#], ""),
            Some((MissingVideoMimes, "imp[0].video.mimes")),
        ),
        ("video ok", body(&[r#"{"id":"v","video":{"mimes":["video/mp4"]}}"#], ""), None),
        (
            "audio without mimes",
            body(&[r#"{"id":"a","audio":{"maxduration":30}}"#], ""),
            Some((MissingAudioMimes, "imp[0].audio.mimes")),
        ),
        (
            "native without request",
            body(&[r#"{"id":"n","native":{"ver":"1.2"}}"#], ""),
            Some((MissingNativeRequest, "imp[0].native.request")),
        ),
        (
            "native with blank request",
            body(&[r#"{"id":"n","native":{"request":"  "}}"#], ""),
            Some((MissingNativeRequest, "imp[0].native.request")),
        ),
        ("banner with format only", body(&[r#"{"id":"b","banner":{"format":[{"w":728,"h":90}]}}"#], ""), None),
        (
            "banner with flex format",
            body(&[r#"{"id":"b","banner":{"format":[{"wratio":16,"hratio":9,"wmin":320}]}}"#], ""),
            None,
        ),
        (
            "banner with one good format among empty ones",
            body(&[r#"{"id":"b","banner":{"format":[{"w":0,"h":0},{"w":320,"h":50}]}}"#], ""),
            None,
        ),
        (
            "banner without size",
            body(&[r#"{"id":"b","banner":{"pos":1}}"#], ""),
            Some((MissingBannerSize, "imp[0].banner")),
        ),
        (
            "banner with w only",
            body(&[r#"{"id":"b","banner":{"w":300}}"#], ""),
            Some((MissingBannerSize, "imp[0].banner")),
        ),
        (
            "banner with sizeless formats",
            body(&[r#"{"id":"b","banner":{"format":[{"w":0,"h":0}]}}"#], ""),
            Some((MissingBannerSize, "imp[0].banner")),
        ),
        ("sizeless interstitial banner", body(&[r#"{"id":"b","instl":1,"banner":{}}"#], ""), None),
        (
            "sizeless banner beside video",
            body(&[r#"{"id":"b","banner":{},"video":{"mimes":["video/mp4"]}}"#], ""),
            None,
        ),
        ("zero floor", body(&[r#"{"id":"b","bidfloor":0,"banner":{"w":1,"h":1}}"#], ""), None),
        (
            "negative floor",
            body(&[OK_BANNER, r#"{"id":"c","bidfloor":-0.01,"banner":{"w":1,"h":1}}"#], ""),
            Some((InvalidBidFloor, "imp[1].bidfloor")),
        ),
        (
            "absurd floor",
            body(&[r#"{"id":"c","bidfloor":1e12,"banner":{"w":1,"h":1}}"#], ""),
            Some((InvalidBidFloor, "imp[0].bidfloor")),
        ),
        (
            "negative deal floor",
            body(&[r#"{"id":"c","banner":{"w":1,"h":1},"pmp":{"deals":[{"id":"d1"},{"id":"d2","bidfloor":-1}]}}"#], ""),
            Some((InvalidBidFloor, "imp[0].pmp.deals[1].bidfloor")),
        ),
        (
            "deal without id",
            body(&[r#"{"id":"c","banner":{"w":1,"h":1},"pmp":{"private_auction":1,"deals":[{"bidfloor":2}]}}"#], ""),
            Some((MissingDealId, "imp[0].pmp.deals[0].id")),
        ),
        ("tmax zero", body(&[OK_BANNER], r#","tmax":0"#), Some((InvalidTmax, "tmax"))),
        ("tmax negative", body(&[OK_BANNER], r#","tmax":-5"#), Some((InvalidTmax, "tmax"))),
        ("tmax positive", body(&[OK_BANNER], r#","tmax":1"#), None),
        (
            "site and app",
            body(&[OK_BANNER], r#","site":{"id":"s"},"app":{"id":"a"}"#),
            Some((MultipleDistributionChannels, "app")),
        ),
        (
            "site and dooh",
            body(&[OK_BANNER], r#","site":{"id":"s"},"dooh":{"id":"d"}"#),
            Some((MultipleDistributionChannels, "dooh")),
        ),
        ("site only", body(&[OK_BANNER], r#","site":{"id":"s"}"#), None),
        (
            "first error in document order wins",
            body(&[r#"{"id":"v","video":{}}"#, r#"{"banner":{}}"#], ""),
            Some((MissingVideoMimes, "imp[0].video.mimes")),
        ),
    ];
    for (what, json, expected) in cases {
        let req = parse_request(json.as_bytes()).unwrap_or_else(|e| panic!("{what}: parse: {e}"));
        match (req.validate(), expected) {
            (Ok(()), None) => {}
            (Err(e), Some((reason, path))) => {
                assert_eq!((e.reason, e.path.as_str()), (reason, path), "{what}");
                assert_eq!(e.nbr, NoBidReason::INVALID_REQUEST, "{what}");
            }
            (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn many_imps_use_the_set_path() {
    let imps: Vec<String> = (0..40).map(|i| format!(r#"{{"id":"{}","banner":{{"w":1,"h":1}}}}"#, i % 39)).collect();
    let refs: Vec<&str> = imps.iter().map(String::as_str).collect();
    let text = body(&refs, "");
    let req = parse_request(text.as_bytes()).expect("parse");
    let e = req.validate().expect_err("duplicate");
    assert_eq!((e.reason, e.path.as_str()), (ValidationReason::DuplicateImpId, "imp[39].id"));
}

#[test]
fn error_codes_and_messages() {
    let text = body(&[r#"{"id":"v","video":{}}"#], "");
    let req = parse_request(text.as_bytes()).expect("parse");
    let e = req.validate().expect_err("invalid");
    assert_eq!(e.reason.as_str(), "missing_video_mimes");
    assert_eq!(
        e.to_string(),
        "invalid bid request: imp[0].video.mimes: video.mimes must list at least one MIME type (missing_video_mimes)"
    );
    assert_eq!(e.nbr.0, 2);
}
