//! Every request in `testdata/` parses identically with serde_json and sonic-rs, normalises,
//! validates, and survives a serialize → parse round trip; the 2.5 samples are lifted into
//! 2.6 fields; unknown fields, unknown enum values and type slips are tolerated.

use adp_openrtb::*;
use std::path::PathBuf;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn samples() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(testdata())
        .expect("testdata dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().expect("file name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read sample"))
        })
        .collect();
    out.sort();
    assert!(out.len() >= 7, "expected the testdata samples, found {}", out.len());
    out
}

/// A sample, parsed; its text lives as long as the test (the request borrows from it).
fn sample(name: &str) -> BidRequest<'static> {
    let bytes: &'static [u8] = Box::leak(std::fs::read(testdata().join(name)).expect("read sample").into_boxed_slice());
    parse_request(bytes).expect("parse sample")
}

#[test]
fn every_sample_parses_identically_with_both_parsers() {
    for (name, bytes) in samples() {
        let a = parse_request_serde_json(&bytes).unwrap_or_else(|e| panic!("{name}: serde_json: {e}"));
        let b = parse_request_sonic(&bytes).unwrap_or_else(|e| panic!("{name}: sonic-rs: {e}"));
        assert_eq!(a, b, "{name}: serde_json and sonic-rs disagree");
        let c = parse_request(&bytes).unwrap_or_else(|e| panic!("{name}: parse_request: {e}"));
        assert_eq!(a, c, "{name}");
        // Minified input (what exchanges send) gives the same struct too.
        let minified =
            serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&bytes).expect("json")).expect("minify");
        assert_eq!(parse_request_sonic(&minified).expect("minified"), a, "{name}: minified");
    }
}

#[test]
fn every_sample_normalises_validates_and_round_trips() {
    for (name, bytes) in samples() {
        let mut req = parse_request(&bytes).expect("parse");
        req.normalize_2_5();
        req.validate().unwrap_or_else(|e| panic!("{name}: {e}"));

        let json = serde_json::to_vec(&req).expect("serialize");
        let back = parse_request(&json).expect("re-parse");
        assert_eq!(back, req, "{name}: serialize → parse");
    }
}

#[test]
fn normalise_is_idempotent() {
    for (name, bytes) in samples() {
        let mut req = parse_request(&bytes).expect("parse");
        req.normalize_2_5();
        let snapshot = req.clone();
        assert!(!req.normalize_2_5().any(), "{name}: second pass lifted something");
        assert_eq!(req, snapshot, "{name}");
    }
}

#[test]
fn banner_site_fields() {
    let req = sample("banner_site.json");
    assert_eq!(req.id, "80ce30c53c16e6ede735f123ef6e32361bfc7b22");
    assert_eq!(req.at, Some(AuctionType::FIRST_PRICE));
    assert_eq!(req.tmax, Some(120));
    assert_eq!(req.cur, ["USD", "EUR"]);
    let imp = &req.imp[0];
    assert_eq!(imp.bidfloor, Some(0.85));
    assert_eq!(imp.secure, Some(1));
    let banner = imp.banner.as_ref().expect("banner");
    assert_eq!(
        banner.format.iter().map(|f| (f.w, f.h)).collect::<Vec<_>>(),
        [(Some(300), Some(250)), (Some(300), Some(600))]
    );
    assert_eq!(banner.pos, Some(AdPosition::ABOVE_THE_FOLD));
    assert!(banner.api.contains(&ApiFramework::OMID_1_0));
    let deal = &imp.pmp.as_ref().expect("pmp").deals[0];
    assert_eq!(
        (&*deal.id, deal.bidfloor, deal.at),
        ("DEAL-NEWS-PREMIUM-001", Some(4.5), Some(AuctionType::FIRST_PRICE))
    );
    assert_eq!(imp.metric[0].kind.as_deref(), Some("viewability"));
    let site = req.site.as_ref().expect("site");
    assert_eq!(site.referrer.as_deref(), Some("https://www.google.com/"));
    assert_eq!(site.publisher.as_ref().and_then(|p| p.id.as_deref()), Some("8953"));
    let device = req.device.as_ref().expect("device");
    assert_eq!(device.devicetype, Some(DeviceType::PERSONAL_COMPUTER));
    assert_eq!(device.connectiontype, Some(ConnectionType::WIFI));
    let geo = device.geo.as_ref().expect("geo");
    assert_eq!(
        (geo.kind, geo.country.as_deref(), geo.utcoffset),
        (Some(LocationType::IP_ADDRESS), Some("USA"), Some(-300))
    );
    let user = req.user.as_ref().expect("user");
    let segments: Vec<_> = user.data[0].segment.iter().filter_map(|s| s.id.as_deref()).collect();
    assert_eq!(segments, ["sports-fans", "auto-intenders", "hhi"]);
    assert_eq!(user.eids[1].uids[0].atype, Some(AgentType::PERSON));
    let schain = req.source.as_ref().and_then(|s| s.schain.as_ref()).expect("schain");
    assert_eq!((schain.complete, schain.nodes[0].asi.as_deref()), (Some(1), Some("exchange.example")));
    let regs = req.regs.as_ref().expect("regs");
    assert_eq!((regs.gdpr, regs.us_privacy.as_deref(), regs.gpp_sid.as_slice()), (Some(0), Some("1YNN"), &[7][..]));
    assert_eq!(req.badv.len(), 2);
    assert!(req.ext.is_some());
}

#[test]
fn video_app_fields() {
    let req = sample("video_app.json");
    let video = req.imp[0].video.as_ref().expect("video");
    assert_eq!(video.mimes.len(), 3);
    assert_eq!((video.minduration, video.maxduration), (Some(5), Some(30)));
    assert_eq!(video.plcmt, Some(Plcmt::INTERSTITIAL));
    assert_eq!(video.startdelay, Some(StartDelay::PRE_ROLL));
    assert!(video.protocols.contains(&Protocol::VAST_4_0_WRAPPER));
    assert_eq!(video.companionad[0].vcm, Some(1));
    assert_eq!(video.durfloors[1].bidfloor, Some(7.5));
    assert_eq!(req.imp[0].rwdd, Some(1));
    let app = req.app.as_ref().expect("app");
    assert_eq!(app.bundle.as_deref(), Some("com.example.puzzlequest"));
    let device = req.device.as_ref().expect("device");
    assert_eq!(device.devicetype, Some(DeviceType::PHONE));
    assert_eq!(device.connectiontype, Some(ConnectionType::CELLULAR_4G));
    assert_eq!(device.pxratio, Some(2.625));
    assert_eq!(device.sua.as_ref().and_then(|s| s.platform.as_ref()).and_then(|p| p.brand.as_deref()), Some("Android"));
    assert_eq!(device.geo.as_ref().and_then(|g| g.lat), Some(37.7749));
    assert_eq!(req.bapp, ["com.competitor.game"]);
}

#[test]
fn native_site_fields() {
    let req = sample("native_site.json");
    let native = req.imp[0].native.as_ref().expect("native");
    let inner: serde_json::Value = serde_json::from_str(&native.request).expect("native request is JSON");
    assert_eq!(inner["assets"].as_array().map(Vec::len), Some(5));
    assert_eq!(native.ver.as_deref(), Some("1.2"));
    assert_eq!(req.user.as_ref().and_then(|u| u.consent.as_deref()).map(|c| &c[..6]), Some("CQHkxE"));
    assert_eq!(req.source.as_ref().and_then(|s| s.schain.as_ref()).map(|s| s.nodes.len()), Some(2));
}

#[test]
fn multiformat_audio_dooh_fields() {
    let req = sample("multiformat_audio_dooh.json");
    assert!(req.dooh.is_some() && req.site.is_none() && req.app.is_none());
    assert_eq!(req.imp[0].qty.as_ref().and_then(|q| q.multiplier), Some(37.5));
    assert_eq!(req.imp[0].dt, Some(1_764_255_600_000.0));
    let audio = req.imp[1].audio.as_ref().expect("audio");
    assert_eq!(audio.rqddurs, [15, 30]);
    assert_eq!(req.device.as_ref().and_then(|d| d.devicetype), Some(DeviceType::OOH_DEVICE));
}

#[test]
fn banner_2_5_is_lifted() {
    let mut req = sample("banner_site_2_5.json");
    assert!(req.regs.as_ref().is_some_and(|r| r.gdpr.is_none()));
    let lifted = req.normalize_2_5();
    assert_eq!(
        lifted.lifted,
        ["regs.gdpr", "regs.us_privacy", "regs.gpp", "regs.gpp_sid", "user.consent", "user.eids", "source.schain"]
    );
    let regs = req.regs.as_ref().expect("regs");
    assert_eq!(regs.gdpr, Some(1));
    assert_eq!(regs.us_privacy.as_deref(), Some("1---"));
    assert_eq!(regs.gpp_sid, [2, 6]);
    let user = req.user.as_ref().expect("user");
    assert_eq!(user.consent.as_deref(), Some("CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"));
    assert_eq!(user.eids[0].source.as_deref(), Some("pubcid.org"));
    assert_eq!(user.eids[0].uids[0].atype, Some(AgentType::BROWSER_OR_DEVICE));
    let schain = req.source.as_ref().and_then(|s| s.schain.as_ref()).expect("schain lifted");
    assert_eq!(schain.nodes[0].sid.as_deref(), Some("1001"));
    req.validate().expect("valid");
}

#[test]
fn video_2_5_is_lifted() {
    let mut req = sample("video_app_2_5.json");
    let lifted = req.normalize_2_5();
    assert_eq!(
        lifted.lifted,
        [
            "regs.gdpr",
            "regs.us_privacy",
            "user.consent",
            "imp[0].video.plcmt",
            "imp[0].video.protocols",
            "imp[0].rwdd",
            "imp[1].video.plcmt"
        ]
    );
    let v0 = req.imp[0].video.as_ref().expect("video");
    assert_eq!((v0.placement, v0.plcmt), (Some(VideoPlacement::IN_STREAM), Some(Plcmt::INSTREAM)));
    assert_eq!(v0.protocols, [Protocol::VAST_3_0]);
    assert_eq!(v0.startdelay, Some(StartDelay::GENERIC_MID_ROLL));
    assert_eq!(req.imp[0].rwdd, Some(1));
    let v1 = req.imp[1].video.as_ref().expect("video");
    assert_eq!(v1.plcmt, Some(Plcmt::NO_CONTENT_STANDALONE));
    assert_eq!(v1.protocols, [Protocol::VAST_2_0, Protocol::VAST_3_0], "2.6 field kept");
    assert_eq!(req.regs.as_ref().and_then(|r| r.gdpr), Some(0), "\"0\" string flag");
    req.validate().expect("valid");
}

#[test]
fn six_fields_win_over_five() {
    let body = br#"{"id":"x","imp":[{"id":"1","banner":{"w":1,"h":1}}],
        "regs":{"gdpr":0,"ext":{"gdpr":1,"us_privacy":"1YYY"}},"user":{"consent":"new","ext":{"consent":"old"}}}"#;
    let mut req = parse_request(body).expect("parse");
    assert_eq!(req.normalize_2_5().lifted, ["regs.us_privacy"]);
    assert_eq!(req.regs.as_ref().and_then(|r| r.gdpr), Some(0));
    assert_eq!(req.user.as_ref().and_then(|u| u.consent.as_deref()), Some("new"));
}

#[test]
fn unknown_fields_values_and_type_slips_are_tolerated() {
    let req = sample("quirks_unknown.json");
    assert_eq!(req.id, "987654321", "numeric id");
    assert_eq!(req.at, Some(AuctionType(501)));
    assert!(!AuctionType(501).is_known());
    assert_eq!(req.tmax, Some(200), "string tmax");
    assert_eq!(req.test, Some(0), "bool test");
    assert_eq!(req.cur, ["USD"], "lone string as list");
    assert_eq!(req.cattax, Some(CategoryTaxonomy(600)));
    assert!(req.badv.is_empty(), "null list");
    assert!(matches!(req.ext, Some(serde_json::Value::Array(_))), "array ext kept");

    let imp = &req.imp[0];
    assert_eq!((&*imp.id, imp.tagid.as_deref()), ("1", Some("55501")));
    assert_eq!(imp.bidfloor, Some(0.5), "string floor");
    assert_eq!((imp.secure, imp.instl), (Some(1), Some(0)));
    assert_eq!(imp.ext, None, "null ext");
    let banner = imp.banner.as_ref().expect("banner");
    assert_eq!((banner.format[0].w, banner.format[0].h), (Some(300), Some(250)));
    assert_eq!(banner.api, [ApiFramework::MRAID_1_0, ApiFramework(600), ApiFramework(1000)]);
    assert_eq!(banner.pos, Some(AdPosition(99)));
    assert!(banner.battr.is_empty());
    assert!(matches!(banner.ext, Some(serde_json::Value::Array(_))));
    let video = imp.video.as_ref().expect("video");
    assert_eq!(video.mimes, ["video/mp4"]);
    assert_eq!(video.protocols, [Protocol::VAST_4_0, Protocol(42)]);
    assert_eq!((video.plcmt, video.placement), (Some(Plcmt(77)), Some(VideoPlacement(9))));
    assert_eq!(video.api, [ApiFramework::OMID_1_0], "lone number as list");
    assert!(matches!(video.ext, Some(serde_json::Value::String(_))));
    let native = imp.native.as_ref().expect("native");
    assert!(native.request.starts_with('{') && native.request.contains("assets"), "object request kept as JSON text");
    let pmp = imp.pmp.as_ref().expect("pmp");
    assert_eq!(pmp.private_auction, Some(1));
    assert_eq!(
        (&*pmp.deals[0].id, pmp.deals[0].bidfloor, pmp.deals[0].at),
        ("7788", Some(1.5), Some(AuctionType::FIXED_PRICE))
    );

    let site = req.site.as_ref().expect("site");
    assert_eq!((site.id.as_deref(), site.mobile), (Some("4411"), Some(1)));
    assert!(site.cat.is_empty());
    assert_eq!(site.content.as_ref().and_then(|c| c.livestream), Some(1));
    let device = req.device.as_ref().expect("device");
    assert_eq!(device.devicetype, Some(DeviceType(99)));
    assert_eq!(device.devicetype.and_then(|d| d.name()), None);
    assert_eq!(device.connectiontype, Some(ConnectionType(500)));
    assert_eq!((device.w, device.h, device.js, device.dnt), (Some(1920), Some(1080), Some(1), Some(0)));
    assert_eq!(device.pxratio, Some(1.0));
    assert_eq!(device.geo.as_ref().and_then(|g| g.lat), Some(52.52));
    assert_eq!(device.geo.as_ref().and_then(|g| g.kind), Some(LocationType(9)));
    let user = req.user.as_ref().expect("user");
    assert_eq!((user.id.as_deref(), user.yob), (None, Some(1985)));
    assert_eq!(user.data[0].segment[0].id.as_deref(), Some("101"));
    assert_eq!(user.data[0].segment[0].value.as_deref(), Some("3"));
    assert_eq!(user.eids[0].uids[0].atype, Some(AgentType(700)));
    let source = req.source.as_ref().expect("source");
    assert_eq!(source.fd, Some(1));
    let schain = source.schain.as_ref().expect("schain");
    assert_eq!((schain.complete, schain.nodes[0].sid.as_deref(), schain.nodes[0].hp), (Some(1), Some("9"), Some(1)));
    let regs = req.regs.as_ref().expect("regs");
    assert_eq!((regs.coppa, regs.gdpr, regs.gpp_sid.as_slice()), (Some(0), Some(1), &[7][..]));
}

#[test]
fn enum_newtypes_name_known_values() {
    assert_eq!(DeviceType::CONNECTED_TV.name(), Some("CONNECTED_TV"));
    assert_eq!(format!("{:?}", DeviceType(3)), "DeviceType::CONNECTED_TV(3)");
    assert_eq!(format!("{:?}", DeviceType(42)), "DeviceType(42)");
    assert_eq!(MarkupType::NATIVE.0, 4);
    assert_eq!(serde_json::to_string(&Protocol::VAST_4_2).expect("ser"), "13");
    assert_eq!(NoBidReason::KNOWN.len(), 18);
    for (i, nbr) in NoBidReason::KNOWN.iter().enumerate() {
        assert_eq!(nbr.0, i as i32, "no-bid reasons are 0..=17 in order");
    }
    assert_eq!(NoBidReason::INSUFFICIENT_AUCTION_TIME.0, 15);
    assert_eq!(NoBidReason::BLOCKED_SUPPLY_CHAIN_NODE.0, 17);
    assert_eq!(LossReason::LOST_TO_HIGHER_BID.0, 102);
}

/// Inputs both parsers must reject (and `parse_request` reports with a position).
#[test]
fn malformed_bodies_are_rejected_by_both() {
    let cases: &[(&str, &[u8])] = &[
        ("empty", b""),
        ("not json", b"hello"),
        ("truncated", br#"{"id":"x","imp":[{"id":"1""#),
        ("array top level", br#"[{"id":"x"}]"#),
        ("trailing garbage", br#"{"id":"x"} x"#),
        ("bad utf8", b"{\"id\":\"\xff\xfe\"}"),
        ("imp not objects", br#"{"id":"x","imp":[1,2]}"#),
        ("w fraction", br#"{"id":"x","imp":[{"id":"1","banner":{"w":300.5}}]}"#),
        ("w out of range", br#"{"id":"x","imp":[{"id":"1","banner":{"w":99999999999}}]}"#),
        ("floor word", br#"{"id":"x","imp":[{"id":"1","bidfloor":"cheap"}]}"#),
        ("floor NaN text", br#"{"id":"x","imp":[{"id":"1","bidfloor":"NaN"}]}"#),
        ("site is string", br#"{"id":"x","site":"example.com"}"#),
        ("duplicate field", br#"{"id":"x","id":"y"}"#),
    ];
    for (what, body) in cases {
        let a = parse_request_serde_json(body);
        let b = parse_request_sonic(body);
        assert!(a.is_err(), "{what}: serde_json accepted");
        assert!(b.is_err(), "{what}: sonic-rs accepted");
        let e = parse_request(body).expect_err(what);
        assert!(e.offset <= body.len() && e.line >= 1 && e.column >= 1, "{what}: {e:?}");
        assert!(!e.message.is_empty(), "{what}");
    }
    let e = parse_request(br#"{"id":"x","imp":[{"id":"1","bidfloor":"cheap"}]}"#).expect_err("floor");
    assert_eq!(e.path, "imp[0].bidfloor");
    assert_eq!(e.kind, ParseErrorKind::Data);
}

/// A proptest finding: `-0` inside a `native.request` given as an object came out as `-0.0`
/// from serde_json and `0.0` from sonic-rs in the request's text.
#[test]
fn negative_zero_in_a_native_request_object_reads_the_same_with_both_parsers() {
    let body = br#"{"id":"x","imp":[{"id":"1","native":{"request":{"assets":[{"id":1,"title":{"len":-0}}]}}}]}"#;
    let a = parse_request_serde_json(body).expect("serde_json");
    let b = parse_request_sonic(body).expect("sonic-rs");
    assert_eq!(a, b);
    let request = &a.imp[0].native.as_ref().expect("native").request;
    assert!(request.contains("\"len\":0.0"), "{request}");
}

/// `kept` is `full` with fields left out: every field `kept` has (other than null or an empty
/// list or object, what a skipped field serializes to) is in `full` with the same value.
fn kept_within(kept: &serde_json::Value, full: &serde_json::Value, path: &str) -> Result<usize, String> {
    use serde_json::Value;
    match (kept, full) {
        (Value::Object(k), Value::Object(f)) => {
            let mut left_out = f.keys().filter(|key| !k.contains_key(*key)).count();
            for (key, kv) in k {
                let empty = kv.is_null() || kv.as_array().is_some_and(Vec::is_empty);
                match f.get(key) {
                    Some(fv) => left_out += kept_within(kv, fv, &format!("{path}.{key}"))?,
                    None if empty => {}
                    None => return Err(format!("{path}.{key} is not in the full parse")),
                }
            }
            Ok(left_out)
        }
        (Value::Array(k), Value::Array(f)) if k.len() == f.len() => k
            .iter()
            .zip(f)
            .enumerate()
            .try_fold(0, |n, (i, (kv, fv))| Ok(n + kept_within(kv, fv, &format!("{path}[{i}]"))?)),
        (Value::Array(k), _) if k.is_empty() => Ok(1),
        (Value::Null, _) => Ok(1),
        _ if kept == full => Ok(0),
        _ => Err(format!("{path}: {kept} here, {full} in the full parse")),
    }
}

/// What the bidder's parse keeps is what the full parse has; it leaves out what the bidder
/// does not read, and the full parse is whole again afterwards (the skipping is per call).
#[test]
fn the_bidders_parse_keeps_what_the_full_parse_has_and_leaves_out_the_rest() {
    for (name, bytes) in samples() {
        let full = parse_request(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kept = parse_request_for_bidding(&bytes).unwrap_or_else(|e| panic!("{name}: bidding: {e}"));
        let (k, f) = (serde_json::to_value(&kept).expect("json"), serde_json::to_value(&full).expect("json"));
        let left_out = kept_within(&k, &f, "").unwrap_or_else(|e| panic!("{name}: {e}"));
        if name == "banner_site.json" || name == "video_app.json" {
            assert!(left_out >= 10, "{name}: only {left_out} fields left out");
        }
        assert_eq!(parse_request(&bytes).expect("again"), full, "{name}: the full parse after the bidder's");
        // Normalising and validating the bidder's parse agrees with the full one.
        let (mut kept, mut full) = (kept, full);
        kept.normalize_2_5();
        full.normalize_2_5();
        assert_eq!(kept.validate().map_err(|e| e.path), full.validate().map_err(|e| e.path), "{name}");
        let k = serde_json::to_value(&kept).expect("json");
        kept_within(&k, &serde_json::to_value(&full).expect("json"), "")
            .unwrap_or_else(|e| panic!("{name}: normalised: {e}"));
    }
}

/// The fields the bidder decides on survive its parse (a field that loses its `unread` mark
/// must be read again; one marked by mistake fails here or in the bidder's HTTP tests).
#[test]
fn the_bidders_parse_keeps_the_fields_it_decides_on() {
    let bytes = std::fs::read(testdata().join("banner_site.json")).expect("read");
    let full = parse_request(&bytes).expect("full");
    let r = parse_request_for_bidding(&bytes).expect("bidding");
    let (imp, fimp) = (&r.imp[0], &full.imp[0]);
    assert_eq!(
        (&imp.id, &imp.tagid, imp.bidfloor, &imp.bidfloorcur),
        (&fimp.id, &fimp.tagid, fimp.bidfloor, &fimp.bidfloorcur)
    );
    let (b, fb) = (imp.banner.as_ref().expect("banner"), fimp.banner.as_ref().expect("banner"));
    assert_eq!((b.w, b.h, b.format.len()), (fb.w, fb.h, fb.format.len()));
    assert_eq!((b.format[0].w, b.format[0].h), (Some(300), Some(250)));
    assert!(b.battr.is_empty() && !fb.battr.is_empty(), "battr is not read by the bidder");
    let (deal, fdeal) = (&imp.pmp.as_ref().expect("pmp").deals[0], &fimp.pmp.as_ref().expect("pmp").deals[0]);
    assert_eq!((&deal.id, deal.bidfloor, &deal.bidfloorcur), (&fdeal.id, fdeal.bidfloor, &fdeal.bidfloorcur));
    assert_eq!(imp.pmp.as_ref().map(|p| p.private_auction), fimp.pmp.as_ref().map(|p| p.private_auction));
    let (site, fsite) = (r.site.as_ref().expect("site"), full.site.as_ref().expect("site"));
    assert_eq!((&site.id, &site.domain, &site.page), (&fsite.id, &fsite.domain, &fsite.page));
    assert_eq!(site.publisher.as_ref().and_then(|p| p.id.clone()), Some("8953".into()));
    assert!(site.content.is_none() && fsite.content.is_some(), "site.content is not read by the bidder");
    let (d, fd) = (r.device.as_ref().expect("device"), full.device.as_ref().expect("device"));
    assert_eq!((&d.ua, &d.ip, &d.os, &d.language), (&fd.ua, &fd.ip, &fd.os, &fd.language));
    assert_eq!(d.devicetype, fd.devicetype);
    let (g, fg) = (d.geo.as_ref().expect("geo"), fd.geo.as_ref().expect("geo"));
    assert_eq!((&g.country, &g.region, &g.city, &g.metro), (&fg.country, &fg.region, &fg.city, &fg.metro));
    let (u, fu) = (r.user.as_ref().expect("user"), full.user.as_ref().expect("user"));
    assert_eq!((&u.id, &u.buyeruid), (&fu.id, &fu.buyeruid));
    fn segs(u: &User) -> Vec<Option<String>> {
        u.data.iter().flat_map(|d| d.segment.iter().map(|s| s.id.as_deref().map(str::to_string))).collect()
    }
    fn sources(u: &User) -> Vec<Option<String>> {
        u.eids.iter().map(|e| e.source.as_deref().map(str::to_string)).collect()
    }
    assert_eq!(segs(u), segs(fu));
    assert_eq!(segs(u).len(), 3);
    assert_eq!(sources(u), sources(fu));
    assert_eq!(
        (&r.id, &r.cur, &r.bcat, &r.badv, r.tmax, r.at),
        (&full.id, &full.cur, &full.bcat, &full.badv, full.tmax, full.at)
    );
    assert_eq!(r.regs, full.regs);
    assert!(r.source.is_none() && full.source.is_some(), "source is not read by the bidder");
}

/// Skipped fields are not type-checked (OpenRTB asks bidders to tolerate what they do not
/// use), but JSON syntax is checked everywhere and read fields keep their checks and paths.
/// (Neither parser checks UTF-8 inside a string it skips, as for unknown fields.)
#[test]
fn the_bidders_parse_skips_type_slips_in_unread_fields_but_not_broken_json() {
    let slips = br#"{"id":"x","imp":[{"id":"1","banner":{"w":300,"h":250,"battr":"none"},"metric":{"type":7}}],"device":{"w":"wide","ua":"UA"},"source":"ex"}"#;
    assert!(parse_request(slips).is_err(), "the full parse checks every field");
    let r = parse_request_for_bidding(slips).expect("the bidder's parse skips them");
    assert_eq!(r.device.as_ref().and_then(|d| d.ua.as_deref()), Some("UA"));
    assert_eq!(r.imp[0].banner.as_ref().and_then(|b| b.w), Some(300));
    for broken in [
        &br#"{"id":"x","imp":[{"id":"1","metric":[1,,2]}]}"#[..],
        br#"{"id":"x","device":{"w":01}}"#,
        br#"{"id":"x","site":{"content":{"title":"a}}"#,
    ] {
        let e = parse_request_for_bidding(broken).expect_err(&String::from_utf8_lossy(broken));
        assert_ne!(e.kind, ParseErrorKind::Data, "{e}");
    }
    let e = parse_request_for_bidding(br#"{"id":"x","imp":[{"id":"1","bidfloor":"cheap"}]}"#).expect_err("floor");
    assert_eq!((e.path.as_str(), e.kind), ("imp[0].bidfloor", ParseErrorKind::Data));
}

/// The walk alone over simd-json's tape of `body` (what the fast parse reads), through `f`.
/// Where sonic-rs' DOM of the same body is walked too (the parse bench's other reader), both
/// walks must return the same request.
fn walked<T>(body: &[u8], f: impl FnOnce(Option<BidRequest<'_>>) -> T) -> T {
    let mut buf = body.to_vec();
    let tape = simd_json::to_tape(&mut buf).ok();
    let from_tape = tape.as_ref().and_then(|t| fast::bid_request(t.as_value()));
    let dom: Option<sonic_rs::Value> = sonic_rs::from_slice(body).ok();
    if let (Some(a), Some(b)) = (&from_tape, dom.as_ref().and_then(fast::bid_request)) {
        assert_eq!(a, &b, "the tape's walk and the DOM's walk disagree");
    }
    f(from_tape)
}

/// The bidder's fast parse (a simd-json tape, then the read fields picked out) is the bidder's
/// parse: on every sample it takes the fast path (the walk alone returns the request) and gives
/// the same struct; shapes the walk leaves alone give the usual parse's result and errors.
#[test]
fn the_fast_parse_is_the_bidders_parse() {
    let mut walked_samples = 0;
    for (name, bytes) in samples() {
        let slow = parse_request_for_bidding(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut dom = BidDom::default();
        let quick = parse_request_for_bidding_fast(&bytes, &mut dom).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(quick, slow, "{name}");
        walked(&bytes, |r| {
            if let Some(r) = r {
                assert_eq!(r, slow, "{name}: the walk alone");
                walked_samples += 1;
            }
        });
    }
    // Only samples with tolerated slips (numbers for ids, ...) may need the usual parse.
    assert!(walked_samples >= 5, "the walk took only {walked_samples} samples");
    for body in [
        // Tolerated slips, a repeated key, DOOH, audio, a lone value for a list, an object
        // for native.request: the walk gives up, the result is the usual parse's.
        &br#"{"id":"x","imp":[{"id":"1","banner":{"w":"300","h":250.0}}],"site":{"id":123}}"#[..],
        br#"{"id":"x","imp":[{"id":"1","banner":{"w":300,"w":250}}]}"#,
        br#"{"id":"x","imp":[{"id":"1","banner":{"w":300}}],"device":{"h":1,"h":2}}"#,
        br#"{"id":"x","imp":[{"id":"1","banner":{"w":300}}],"dooh":{"id":"d"}}"#,
        br#"{"id":"x","imp":[{"id":"1","audio":{"mimes":["audio/mp4"]}}]}"#,
        br#"{"id":"x","imp":[{"id":"1","video":{"mimes":"video/mp4"}}],"cur":"EUR"}"#,
        br#"{"id":"x","imp":[{"id":"1","native":{"request":{"ver":"1.2"}}}]}"#,
        br#"{"id":"x","imp":[{"id":"1","bidfloor":1e400}]}"#,
        br#"{"id":"x","imp":[{"id":"1","banner":{"w":4294967296}}]}"#,
        br#"{"id":"x","imp":[{"id":"1","bidfloor":"cheap"}]}"#,
        br#"{"id":"x","imp":[{"id":"1"}],"user":{"ext":{"consent":"CO","eids":[{"source":"s"}]}},"regs":{"ext":{"gdpr":1}}}"#,
        br#"{"id":"x","imp":[{"id":"1","tagid":"a\u00e9b"}],"regs":null,"user":null,"bcat":null}"#,
        br#"{"id":"x","imp":[{"id":"1"}]"#,
        br#"[1,2]"#,
        // Bodies simd-json 0.17 would take where sonic-rs and serde_json refuse them (a NUL
        // after a number or literal, a long number with junk after it, an unpaired UTF-16
        // surrogate escape, a raw control character in a string), and `-0` (an integer on the
        // tape, a float for the usual parse): the fast parse must still give the usual parse's
        // result.
        b"{\"id\":\"x\",\"imp\":[{\"id\":\"1\",\"banner\":{\"w\":300\0,\"h\":250}}]}",
        b"{\"id\":\"x\",\"imp\":[{\"id\":\"1\"}],\"test\":true\0}",
        b"{\"id\":\"x\",\"imp\":[{\"id\":\"1\"}],\"regs\":{\"gpp_sid\":[7\0\0]}}",
        br#"{"id":"x","imp":[{"id":"1"}],"tmax":1000000000000000000x}"#,
        br#"{"id":"x","imp":[{"id":"1","bidfloor":1.2345678901234567890x}]}"#,
        br#"{"id":"x","imp":[{"id":"1"}],"foo":1000000000000000000abc}"#,
        br#"{"id":"x","imp":[{"id":"1"}],"device":{"geo":{"lat":0.00000000000000000000001x}}}"#,
        br#"{"id":"x","imp":[{"id":"1"}],"tmax":100000000000000000}"#,
        br#"{"id":"x","imp":[{"id":"1","bidfloor":1.2345678901234567890}]}"#,
        br#"{"id":"12345678901234567890","imp":[{"id":"1"}]}"#,
        br#"{"id":"\ud800","imp":[{"id":"1"}]}"#,
        br#"{"id":"x\ud800y","imp":[{"id":"1"}]}"#,
        br#"{"id":"\ud800\ue000","imp":[{"id":"1"}]}"#,
        br#"{"id":"\udc00","imp":[{"id":"1"}]}"#,
        br#"{"id":"x","imp":[{"id":"1"}],"user":{"ext":{"k":"\ud800"}}}"#,
        br#"{"id":"\ud83d\ude00","imp":[{"id":"1"}],"site":{"domain":"caf\u00e9.example"}}"#,
        b"{\"id\":\"a\x01b\",\"imp\":[{\"id\":\"1\"}]}",
        b"{\"id\":\"a\tb\",\"imp\":[{\"id\":\"1\"}]}",
        b"{\"id\":\"x\",\"imp\":[{\"id\":\"1\"}],\"site\":{\"name\":\"a\x1fb\"}}",
        br#"{"id":"x","imp":[{"id":"1"}],"regs":{"ext":{"gdpr":-0}}}"#,
        br#"{"id":"x","imp":[{"id":"1","banner":{"w":-0,"h":1}}]}"#,
        br#"{"id":"x","imp":[{"id":"1","bidfloor":-0.0}]}"#,
        br#"{"id":"x","imp":[{"id":"1","bidfloor":-0}]}"#,
        br#"{"id":"x","imp":[{"id":"1"}],"user":{"ext":{"v":[-0.0,-1,18446744073709551615,1e308]}}}"#,
    ] {
        let slow = parse_request_for_bidding(body);
        let mut dom = BidDom::default();
        let quick = parse_request_for_bidding_fast(body, &mut dom);
        assert_eq!(quick, slow, "{}", String::from_utf8_lossy(body));
        // The sign of a zero floor too (equal as numbers either way).
        let sign = |r: &Result<BidRequest<'_>, ParseError>| {
            r.as_ref().ok().and_then(|r| r.imp.first()).and_then(|i| i.bidfloor).map(f64::is_sign_negative)
        };
        assert_eq!(sign(&quick), sign(&slow), "{}", String::from_utf8_lossy(body));
    }
    // The ext objects a 2.5 exchange sends are read by the walk itself.
    let body = br#"{"id":"x","imp":[{"id":"1"}],"user":{"ext":{"consent":"CO"}},"regs":{"ext":{"gdpr":1}}}"#;
    walked(body, |r| {
        let r = r.expect("walked");
        assert_eq!(r.regs.and_then(|g| g.ext), Some(serde_json::json!({"gdpr": 1})));
        assert_eq!(r.user.and_then(|u| u.ext), Some(serde_json::json!({"consent": "CO"})));
    });
    // An ext nested deeper than the limit is left to the usual parse, which refuses it.
    let deep = format!(r#"{{"id":"x","imp":[{{"id":"1"}}],"regs":{{"ext":{}1{}}}}}"#, "[".repeat(40), "]".repeat(40));
    walked(deep.as_bytes(), |r| assert!(r.is_none()));
    // At the limit (32 levels, as `de::ext`) the walk takes it, one more it does not.
    for (levels, ok) in [(31, true), (32, true), (33, false)] {
        let body = format!(
            r#"{{"id":"x","imp":[{{"id":"1"}}],"user":{{"ext":{}1{}}}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        );
        assert_eq!(parse_request_for_bidding(body.as_bytes()).is_ok(), ok, "{levels} levels");
        walked(body.as_bytes(), |r| assert_eq!(r.is_some(), ok, "{levels} levels"));
    }
    assert!(parse_request_for_bidding(deep.as_bytes()).is_err());
    let mut dom = BidDom::default();
    assert_eq!(parse_request_for_bidding_fast(deep.as_bytes(), &mut dom), parse_request_for_bidding(deep.as_bytes()));
    // A repeated key is left to the usual parse, which refuses a repeated field; so is one
    // repeated among many keys (the hash check's slow path).
    walked(br#"{"id":"x","id":"y"}"#, |r| assert!(r.is_none()));
    let many: String = (0..70).map(|i| format!(r#""k{i}":{i},"#)).collect();
    walked(format!(r#"{{"id":"x",{many}"imp":[{{"id":"1"}}],"k7":0}}"#).as_bytes(), |r| assert!(r.is_none()));
    walked(format!(r#"{{"id":"x",{many}"imp":[{{"id":"1"}}]}}"#).as_bytes(), |r| assert!(r.is_some()));
}

mod differential {
    use super::*;
    use proptest::prelude::*;

    fn corpus() -> Vec<Vec<u8>> {
        samples().into_iter().map(|(_, b)| b).collect()
    }

    /// Where the bidder reads (JSON pointers; a missing parent is created as an object).
    const READ_PATHS: &[&str] = &[
        "/id",
        "/imp",
        "/imp/0",
        "/imp/0/id",
        "/imp/0/banner",
        "/imp/0/banner/w",
        "/imp/0/banner/format",
        "/imp/0/banner/format/0/h",
        "/imp/0/video",
        "/imp/0/video/mimes",
        "/imp/0/video/protocols",
        "/imp/0/video/placement",
        "/imp/0/video/plcmt",
        "/imp/0/video/maxduration",
        "/imp/0/native",
        "/imp/0/native/request",
        "/imp/0/native/ver",
        "/imp/0/pmp",
        "/imp/0/pmp/deals",
        "/imp/0/pmp/deals/0/id",
        "/imp/0/pmp/deals/0/bidfloor",
        "/imp/0/pmp/deals/0/at",
        "/imp/0/pmp/private_auction",
        "/imp/0/tagid",
        "/imp/0/bidfloor",
        "/imp/0/bidfloorcur",
        "/imp/0/instl",
        "/imp/0/rwdd",
        "/imp/0/audio",
        "/site",
        "/site/id",
        "/site/domain",
        "/site/page",
        "/site/publisher",
        "/site/publisher/id",
        "/app",
        "/app/bundle",
        "/dooh",
        "/device",
        "/device/ua",
        "/device/ip",
        "/device/ipv6",
        "/device/devicetype",
        "/device/os",
        "/device/language",
        "/device/geo",
        "/device/geo/country",
        "/device/geo/metro",
        "/user",
        "/user/id",
        "/user/buyeruid",
        "/user/geo",
        "/user/data",
        "/user/data/0/segment",
        "/user/data/0/segment/0/id",
        "/user/eids",
        "/user/eids/0/source",
        "/user/consent",
        "/user/ext",
        "/regs",
        "/regs/gdpr",
        "/regs/coppa",
        "/regs/us_privacy",
        "/regs/gpp",
        "/regs/gpp_sid",
        "/regs/ext",
        "/test",
        "/at",
        "/tmax",
        "/cur",
        "/wseat",
        "/bseat",
        "/bcat",
        "/badv",
    ];

    /// Sets `path` in `doc` (objects created on the way; an index past a list's end appends).
    fn put(doc: &mut serde_json::Value, path: &str, value: serde_json::Value) {
        let mut at = doc;
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if let Ok(n) = part.parse::<usize>() {
                if !at.is_array() {
                    *at = serde_json::Value::Array(Vec::new());
                }
                let list = at.as_array_mut().expect("array");
                let n = n.min(list.len());
                if n == list.len() {
                    list.push(serde_json::json!({}));
                }
                if last {
                    list[n] = value;
                    return;
                }
                at = &mut list[n];
            } else {
                if !at.is_object() {
                    *at = serde_json::json!({});
                }
                let map = at.as_object_mut().expect("object");
                if last {
                    map.insert((*part).to_string(), value);
                    return;
                }
                at = map.entry((*part).to_string()).or_insert_with(|| serde_json::json!({}));
            }
        }
    }

    /// Any JSON value, biased to the shapes exchanges slip into.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::{json, Value};
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-5i64..400).prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
            (0u32..1000).prop_map(|n| json!(f64::from(n) / 4.0)),
            "[a-z0-9 .\\-]{0,12}".prop_map(Value::String),
            "[0-9]{1,12}".prop_map(Value::String),
            Just(json!("caf\u{e9} \"q\" \\ \n")),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(("[a-z]{1,3}|id|w|h|ext", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// A sample with one to three bytes replaced by JSON-significant or invalid ones.
    fn mutated_sample() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            Just(b'"'),
            Just(b','),
            Just(b'}'),
            Just(b']'),
            Just(b'0'),
            Just(b'9'),
            Just(b'.'),
            Just(b'-'),
            Just(b'e'),
            Just(b' '),
            Just(b'\\'),
            Just(b'n'),
            Just(b'{'),
            Just(b'['),
            Just(0x01u8),
            Just(0xC3u8),
        ];
        (0usize..7, proptest::collection::vec((any::<prop::sample::Index>(), byte), 1..4)).prop_map(|(which, edits)| {
            let corpus = corpus();
            let mut body = corpus[which % corpus.len()].clone();
            for (at, byte) in edits {
                let i = at.index(body.len());
                body[i] = byte;
            }
            body
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Mutated samples: whenever sonic-rs accepts a body, serde_json accepts it too and
        /// builds the same struct (so `parse_request`, sonic-rs first, is never more lenient or
        /// different than serde_json).
        #[test]
        fn sonic_never_disagrees_with_serde_json(
            body in mutated_sample(),
        ) {
            if let Ok(fast) = parse_request_sonic(&body) {
                let reference = parse_request_serde_json(&body);
                prop_assert!(reference.is_ok(), "sonic-rs accepted what serde_json rejects: {:?}", reference);
                prop_assert_eq!(reference.ok(), Some(fast));
            }
        }

        /// Mutated samples through the bidder's parse: whatever the full parse takes, it takes
        /// too, keeping the same fields; whatever it takes is valid JSON.
        #[test]
        fn the_bidders_parse_is_the_full_parse_less_unread_fields(
            body in mutated_sample(),
        ) {
            let kept = parse_request_for_bidding(&body);
            if let Ok(full) = parse_request(&body) {
                prop_assert!(kept.is_ok(), "the bidder's parse refused what the full parse takes: {:?}", kept.err());
                let k = serde_json::to_value(kept.as_ref().ok()).expect("json");
                let f = serde_json::to_value(Some(&full)).expect("json");
                prop_assert!(kept_within(&k, &f, "").is_ok(), "{:?}", kept_within(&k, &f, ""));
            }
            if kept.is_ok() {
                prop_assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok(), "not JSON, yet taken");
            }
            // The fast parse (what the server calls) is this parse, result and error alike.
            let mut dom = BidDom::default();
            prop_assert_eq!(parse_request_for_bidding_fast(&body, &mut dom), kept);
        }

        /// Random JSON values (every type, numeric strings, escapes, large and fractional
        /// numbers, lone values, nested lists and objects) at the paths the bidder reads, in
        /// the samples: the fast parse (a simd-json tape and a hand walk) returns exactly what the
        /// bidder's serde parse returns, a request or an error; and the walk alone, when it
        /// takes a body, agrees.
        #[test]
        fn the_fast_parse_agrees_with_the_bidders_parse_on_any_value_in_a_read_field(
            which in 0usize..7,
            edits in proptest::collection::vec((0usize..READ_PATHS.len(), json_value()), 1..4),
        ) {
            let corpus = corpus();
            let mut doc: serde_json::Value = serde_json::from_slice(&corpus[which % corpus.len()]).expect("sample");
            for (path, value) in edits {
                put(&mut doc, READ_PATHS[path], value);
            }
            let body = serde_json::to_vec(&doc).expect("json");
            let slow = parse_request_for_bidding(&body);
            let mut dom = BidDom::default();
            prop_assert_eq!(&parse_request_for_bidding_fast(&body, &mut dom), &slow);
            walked(&body, |r| {
                if let Some(r) = r {
                    prop_assert_eq!(Ok(r), slow);
                }
                Ok(())
            })?;
        }

        /// Random numbers in number positions parse to the same values.
        #[test]
        fn numbers_agree(floor in any::<f64>().prop_filter("finite", |f| f.is_finite()), w in any::<i32>(), lat in -90.0f64..90.0) {
            let body = format!(
                r#"{{"id":"n","imp":[{{"id":"1","bidfloor":{floor:e},"banner":{{"w":{w},"h":1}}}}],"device":{{"geo":{{"lat":{lat}}}}}}}"#
            );
            let a = parse_request_serde_json(body.as_bytes()).expect("serde_json");
            let b = parse_request_sonic(body.as_bytes()).expect("sonic");
            // Bit-exact, except the sign of zero: serde_json reads `-0e0` as -0.0, sonic-rs as
            // +0.0 (equal as numbers, and a floor of zero either way).
            let bits = |f: Option<f64>| f.map(|f| if f == 0.0 { 0 } else { f.to_bits() });
            prop_assert_eq!(bits(a.imp[0].bidfloor), bits(b.imp[0].bidfloor));
            prop_assert_eq!(a, b);
        }
    }
}

/// Hostile nesting is an error, not a stack overflow, in `ext`, in unknown fields and at the
/// top level: bodies deeper than `SONIC_MAX_DEPTH` never reach sonic-rs (it skips unknown
/// values recursively without a limit), serde_json stops at 128 levels, and `ext` values are
/// limited to `de::MAX_EXT_DEPTH` levels by this crate.
#[test]
fn deep_nesting_is_rejected() {
    let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for depth in [300, 100_000] {
        for body in [
            format!(r#"{{"id":"x","imp":[{{"id":"1","banner":{{"w":1,"h":1}}}}],"ext":{}}}"#, deep(depth)),
            deep(depth),
        ] {
            assert!(parse_request_sonic(body.as_bytes()).is_err(), "depth {depth}");
            assert!(parse_request_serde_json(body.as_bytes()).is_err(), "depth {depth}");
            assert!(parse_request(body.as_bytes()).is_err(), "depth {depth}");
        }
        // An unknown field is skipped: serde_json does that iteratively (no limit needed);
        // sonic-rs would recurse, so it never sees such a body.
        let unknown = format!(r#"{{"id":"x","unknown":{}}}"#, deep(depth));
        assert!(parse_request_sonic(unknown.as_bytes()).is_err(), "refused, not overflowed");
        assert_eq!(parse_request(unknown.as_bytes()), parse_request_serde_json(unknown.as_bytes()));
    }
    let ok = format!(r#"{{"id":"x","ext":{{"a":{}}}}}"#, deep(adp_openrtb::de::MAX_EXT_DEPTH - 1));
    assert_eq!(
        parse_request_serde_json(ok.as_bytes()).expect("at the limit"),
        parse_request(ok.as_bytes()).expect("ok")
    );
    let too_deep = format!(r#"{{"id":"x","ext":{{"a":{}}}}}"#, deep(adp_openrtb::de::MAX_EXT_DEPTH));
    let e = parse_request(too_deep.as_bytes()).expect_err("over the limit");
    assert!(e.path.starts_with("ext.a[0]"), "{}", e.path);
    assert!(e.message.contains("nested deeper"), "{e}");
}

/// Strings borrow from the request body unless their JSON text has escapes (then they are
/// decoded into owned strings); both read the same. Numbers taken as ids are owned text.
#[test]
fn strings_borrow_from_the_body_unless_escaped() {
    use std::borrow::Cow;
    let body = br#"{"id":"plain","imp":[{"id":7,"tagid":"a\/b","banner":{"w":300,"h":250}}],
        "site":{"domain":"news.example","cat":["IAB1","IAB\u0032"]},"bcat":"IAB25"}"#;
    let parsed = [
        adp_openrtb::parse_request_sonic(body).expect("sonic-rs"),
        adp_openrtb::parse_request_serde_json(body).expect("serde_json"),
    ];
    for req in parsed {
        assert!(matches!(req.id, Cow::Borrowed("plain")), "{:?}", req.id);
        assert!(matches!(req.imp[0].id, Cow::Owned(ref s) if s == "7"), "{:?}", req.imp[0].id);
        assert!(matches!(req.imp[0].tagid, Some(Cow::Owned(ref s)) if s == "a/b"), "{:?}", req.imp[0].tagid);
        let site = req.site.as_deref().expect("site");
        assert!(matches!(site.domain, Some(Cow::Borrowed("news.example"))), "{:?}", site.domain);
        assert!(matches!(site.cat[0], Cow::Borrowed("IAB1")) && site.cat[1] == "IAB2", "{:?}", site.cat);
        // A lone string where a list is expected is a one-item list, still borrowed.
        assert!(matches!(req.bcat.as_slice(), [Cow::Borrowed("IAB25")]), "{:?}", req.bcat);
    }
}
