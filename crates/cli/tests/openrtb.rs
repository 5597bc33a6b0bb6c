//! The OpenRTB bidder over HTTP against `serve --demo`: 2.5 and 2.6 requests, gzip both ways,
//! deals in open and private auctions, bcat/badv, floors, tmax, unknown fields and enum
//! values, and win → billing notices booking spend exactly once. Every bid response is
//! validated against the IAB JSON schema (`shared/openrtb/schema/BidResponse.json`, read from
//! disk; set OPENRTB_SCHEMA_DIR to point elsewhere).

mod common;

use common::{Client, Server};
use jsonschema::{Retrieve, Uri, Validator};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SCHEMA_BASE: &str = "https://iabtechlab.com/openrtb/2.6/";

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

struct DiskRetriever;

impl Retrieve for DiskRetriever {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .as_str()
            .strip_prefix(SCHEMA_BASE)
            .filter(|n| n.ends_with(".json") && !n.contains('/'))
            .ok_or_else(|| format!("refusing to fetch {uri}"))?;
        Ok(serde_json::from_str(&std::fs::read_to_string(schema_dir().join(name))?)?)
    }
}

fn response_schema() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path = schema_dir().join("BidResponse.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let schema: Value = serde_json::from_str(&text).expect("schema JSON");
        jsonschema::options().with_retriever(DiskRetriever).build(&schema).expect("schema compiles")
    })
}

fn assert_schema_valid(resp: &Value) {
    let errors: Vec<String> =
        response_schema().iter_errors(resp).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "bid response does not match BidResponse.json:\n{}\n{resp:#}", errors.join("\n"));
}

fn sample(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openrtb/testdata").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("sample")).expect("sample JSON")
}

/// A plain 2.6 banner request for a 300x250 on a site unknown to the catalog.
fn banner(id: &str) -> Value {
    json!({"id": id, "imp": [{"id": "1", "banner": {"format": [{"w": 300, "h": 250}]}, "bidfloor": 0.5, "bidfloorcur": "USD"}],
           "site": {"domain": "news.example", "page": "https://news.example/a", "publisher": {"id": "p1"}},
           "device": {"ua": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
                      "ip": "203.0.113.9", "geo": {"country": "DEU"}},
           "user": {"id": "rtb-user-1"}, "tmax": 500})
}

struct Bidder {
    base: String,
    http: reqwest::Client,
}

struct BidReply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Option<Value>,
}

impl Bidder {
    fn new(server: &Server) -> Bidder {
        Bidder { base: server.base.clone(), http: reqwest::Client::new() }
    }

    async fn post_raw(&self, body: Vec<u8>, headers: &[(&str, &str)]) -> BidReply {
        let mut req = self.http.post(format!("{}/openrtb2/bid", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("send");
        let status = r.status();
        let headers = r.headers().clone();
        let raw = r.bytes().await.expect("body").to_vec();
        let text = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).expect("gunzip");
            out
        } else {
            raw
        };
        let body = (!text.is_empty()).then(|| serde_json::from_slice(&text).expect("JSON body"));
        if status == StatusCode::OK {
            if let Some(b) = &body {
                assert_schema_valid(b);
            }
        }
        BidReply { status, headers, body }
    }

    async fn bid(&self, req: &Value) -> BidReply {
        self.post_raw(serde_json::to_vec(req).expect("json"), &[("content-type", "application/json")]).await
    }
}

fn bids(resp: &Value) -> Vec<Value> {
    resp["seatbid"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["bid"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map(|i| rest[i..].to_string()).unwrap_or_default()
}

async fn get(base: &str, path: &str) -> (StatusCode, String) {
    let r = reqwest::get(format!("{base}{path}")).await.expect("get");
    let s = r.status();
    (s, r.text().await.unwrap_or_default())
}

async fn stats(admin: &Client) -> Value {
    let r = admin.get("/api/v1/serving/stats").await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

/// Spend and wins of one line item in the delivery report, once the event log caught up.
async fn report_of(admin: &Client, line_item: &str, want_spend: i64) -> (i64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = admin.get("/api/v1/reports/delivery").await;
        let rows = r.body["rows"].as_array().cloned().unwrap_or_default();
        let mine: Vec<&Value> = rows.iter().filter(|row| row["line_item_id"] == line_item).collect();
        let spend = mine.iter().map(|row| row["spend_micros"].as_i64().unwrap_or(0)).sum::<i64>();
        let wins = mine.iter().map(|row| row["wins"].as_u64().unwrap_or(0)).sum::<u64>();
        let imps = mine.iter().map(|row| row["impressions"].as_u64().unwrap_or(0)).sum::<u64>();
        if spend == want_spend || Instant::now() > deadline {
            return (spend, wins, imps);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_first_banner_video_and_native_request_each_get_a_schema_valid_bid() {
    let server = Server::start(&["--demo"]);
    let b = Bidder::new(&server);
    let r = b.bid(&banner("first")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers.get("x-openrtb-version").map(|v| v.to_str().unwrap_or("")), Some("2.6"));
    let body = r.body.expect("body");
    assert_eq!(body["id"], "first");
    assert_eq!(body["cur"], "USD");
    assert_eq!(body["seatbid"][0]["seat"], "adplatform");
    let bid = &bids(&body)[0];
    assert_eq!((bid["impid"].as_str(), bid["crid"].as_str()), (Some("1"), Some("demo-acme-mrec")));
    // The bid is the line item's rate (2.50 CPM), never below the floor.
    assert_eq!(bid["price"].as_f64(), Some(2.5));
    assert_eq!((bid["w"].as_i64(), bid["h"].as_i64(), bid["mtype"].as_i64()), (Some(300), Some(250), Some(1)));
    assert_eq!(bid["adomain"], json!(["acme-shoes.example"]));
    for k in ["nurl", "burl", "lurl"] {
        assert!(bid[k].as_str().is_some_and(|u| u.contains("${AUCTION_PRICE}")), "{k}: {bid}");
    }
    assert!(bid["adm"].as_str().is_some_and(|a| a.contains("/v1/t/click?")), "adm carries our click tracker");
    // 728x90 gets the leaderboard creative.
    let mut leader = banner("leader");
    leader["imp"][0]["banner"] = json!({"w": 728, "h": 90});
    let body = b.bid(&leader).await.body.expect("bid");
    assert_eq!(bids(&body)[0]["crid"], "demo-acme-leader");
    // Video (2.6 app sample, with a user id) and native (site sample).
    for (name, mtype) in [("video_app.json", 2), ("native_site.json", 4)] {
        let mut req = sample(name);
        req["tmax"] = json!(1000);
        let r = b.bid(&req).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {:?}", r.body);
        let body = r.body.expect("body");
        let bid = &bids(&body)[0];
        assert_eq!(bid["mtype"].as_i64(), Some(mtype), "{name}: {bid}");
        if mtype == 4 {
            let adm: Value = serde_json::from_str(bid["adm"].as_str().expect("adm")).expect("native adm is JSON");
            assert_eq!(adm["ver"], "1.2");
            assert!(adm["assets"].as_array().is_some_and(|a| !a.is_empty()), "{adm}");
        } else {
            assert!(bid["adm"].as_str().is_some_and(|a| a.contains("<VAST")), "{bid}");
        }
    }
}

/// Every imp counts as one request in the reports, whether it got a bid (its bid event stands
/// for its request event) or not (a request event of its own, with the no-bid reason).
#[tokio::test]
async fn each_imp_is_one_request_in_the_reports_bid_or_not() {
    let server = Server::start(&["--demo"]);
    let admin = server.admin();
    let b = Bidder::new(&server);
    let mut req = banner("two-imps");
    let mut dear = req["imp"][0].clone();
    (dear["id"], dear["bidfloor"]) = (json!("2"), json!(1000.0));
    req["imp"].as_array_mut().expect("imps").push(dear);
    let body = b.bid(&req).await.body.expect("a bid on the first imp");
    assert_eq!(bids(&body).iter().map(|b| b["impid"].clone()).collect::<Vec<_>>(), vec![json!("1")]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let totals = loop {
        let r = admin.get("/api/v1/reports?metrics=requests,bids").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let t = r.body["rows"][0].clone();
        if (t["requests"] == 2 && t["bids"] == 1) || Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((totals["requests"].as_i64(), totals["bids"].as_i64()), (Some(2), Some(1)), "{totals}");
}

#[tokio::test]
async fn openrtb_2_5_requests_and_unknown_fields_and_enum_values_are_understood() {
    let server = Server::start(&["--demo"]);
    let b = Bidder::new(&server);
    for name in ["banner_site_2_5.json", "video_app_2_5.json", "banner_site.json", "quirks_unknown.json"] {
        let mut req = sample(name);
        req["tmax"] = json!(1000);
        let r = b.bid(&req).await;
        // Each sample is a valid request: a bid (200) or a plain no-bid (204), never an error.
        assert!(matches!(r.status, StatusCode::OK | StatusCode::NO_CONTENT), "{name}: {} {:?}", r.status, r.body);
    }
    // Unknown fields anywhere and enum values the spec does not (yet) have are ignored.
    let mut req = banner("unknowns");
    req["imp"][0]["banner"]["pos"] = json!(99);
    req["imp"][0]["banner"]["future_field"] = json!({"x": [1, 2]});
    req["device"]["devicetype"] = json!(42);
    req["brand_new_top_level"] = json!(true);
    req["regs"] = json!({"gdpr": 0, "ext": {"anything": 1}});
    let r = b.bid(&req).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

#[tokio::test]
async fn gzip_requests_are_read_and_gzip_answers_given_when_accepted() {
    let server = Server::start(&["--demo"]);
    let b = Bidder::new(&server);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&serde_json::to_vec(&banner("gz")).expect("json")).expect("gzip");
    let compressed = gz.finish().expect("gzip");
    let r = b
        .post_raw(
            compressed.clone(),
            &[("content-type", "application/json"), ("content-encoding", "gzip"), ("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers.get("content-encoding").map(|v| v.to_str().unwrap_or("")), Some("gzip"));
    assert_eq!(r.body.expect("body")["id"], "gz");
    // Without Accept-Encoding the answer is plain.
    let r = b.post_raw(compressed, &[("content-type", "application/json"), ("content-encoding", "gzip")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get("content-encoding").is_none());
    // A body that claims gzip but is not: a client error, not a crash.
    let r = b.post_raw(b"{not gzip".to_vec(), &[("content-encoding", "gzip")]).await;
    assert!(r.status.is_client_error(), "{}", r.status);
}

#[tokio::test]
async fn deals_bind_their_line_items_in_private_and_open_auctions() {
    let server = Server::start(&["--demo"]);
    let b = Bidder::new(&server);
    // The demo's deal line item (CPC 1.20, eCPM 1.20 at the prior CTR) targets users in the
    // initech-visitors segment and may bid on deal demo-deal-1.
    let mut req = banner("deal-private");
    req["user"]["data"] = json!([{"id": "dmp", "segment": [{"id": "initech-visitors"}]}]);
    req["imp"][0]["pmp"] = json!({"private_auction": 1, "deals": [{"id": "other-deal", "bidfloor": 0.1}, {"id": "demo-deal-1", "bidfloor": 1.0}]});
    let body = b.bid(&req).await.body.expect("a deal bid");
    let bid = &bids(&body)[0];
    assert_eq!((bid["dealid"].as_str(), bid["crid"].as_str()), (Some("demo-deal-1"), Some("demo-initech-mrec")));
    // Private auction for a deal nobody targets: no bid, even though open line items match.
    req["imp"][0]["pmp"] = json!({"private_auction": 1, "deals": [{"id": "other-deal"}]});
    assert_eq!(b.bid(&req).await.status, StatusCode::NO_CONTENT);
    // The same deals in an open auction: the best open bid (Acme 2.50) beats the deal (1.20).
    req["imp"][0]["pmp"]["private_auction"] = json!(0);
    let body = b.bid(&req).await.body.expect("open bid");
    assert_eq!(bids(&body)[0]["crid"], "demo-acme-mrec");
    assert!(bids(&body)[0].get("dealid").is_none());
    // The deal's floor binds the deal bid.
    req["imp"][0]["pmp"] = json!({"private_auction": 1, "deals": [{"id": "demo-deal-1", "bidfloor": 5.0}]});
    assert_eq!(b.bid(&req).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn bcat_badv_floors_seats_and_currencies_decide_who_may_bid() {
    let server = Server::spawn(
        &tempfile::tempdir().expect("tmp").path().join("d"),
        &["--demo", "--admin-key", common::ADMIN_KEY],
        &[("ADP_RTB_NO_BID", "nbr"), ("ADP_RTB_FX", "USD:1,EUR:0.9")],
    );
    let b = Bidder::new(&server);
    let reason = |r: &BidReply| r.body.as_ref().map(|b| (b["nbr"].as_i64(), b["ext"]["adplatform"].clone()));
    // Acme is IAB18 (advertiser category) and acme-shoes.example: blocked either way.
    for (k, v) in [("bcat", json!(["IAB18"])), ("badv", json!(["acme-shoes.example"]))] {
        let mut req = banner(k);
        req[k] = v.clone();
        let r = b.bid(&req).await;
        assert_eq!(r.status, StatusCode::OK);
        let (nbr, ext) = reason(&r).expect("nbr body");
        assert!(bids(r.body.as_ref().expect("b")).is_empty(), "{k} must block Acme");
        assert_eq!((nbr, ext["reason"].as_str()), (Some(0), Some("no_bid")), "{k}: {ext}");
        // On a known placement (its own blocks merged with the request's), blocked as well;
        // with other lists, or none, a bid.
        req["imp"][0]["tagid"] = json!("demo-mrec");
        for _ in 0..2 {
            assert!(bids(&b.bid(&req).await.body.expect("b")).is_empty(), "{k} must block Acme on demo-mrec");
        }
        req[k] = json!(["IAB1", "other.example"]);
        assert_eq!(bids(&b.bid(&req).await.body.expect("bid")).len(), 1, "{k} with other values");
        req[k] = json!([]);
        assert_eq!(bids(&b.bid(&req).await.body.expect("bid")).len(), 1, "{k} empty");
        req[k] = v;
        assert!(bids(&b.bid(&req).await.body.expect("b")).is_empty(), "{k} must block Acme again");
    }
    // A floor above every line item's rate: no bid, reason below_floor.
    let mut req = banner("floor");
    req["imp"][0]["bidfloor"] = json!(50.0);
    let (_, ext) = reason(&b.bid(&req).await).expect("nbr");
    assert_eq!(ext["imps"]["1"], "below_floor");
    // A floor in EUR is converted: 2.0 EUR = 2.22 USD < 2.50, so Acme still bids.
    req["imp"][0]["bidfloor"] = json!(2.0);
    req["imp"][0]["bidfloorcur"] = json!("EUR");
    assert_eq!(bids(&b.bid(&req).await.body.expect("bid")).len(), 1);
    // Bidding in EUR when the request only takes EUR: 2.50 USD = 2.25 EUR.
    let mut req = banner("eur");
    req["cur"] = json!(["EUR"]);
    let body = b.bid(&req).await.body.expect("bid");
    assert_eq!((body["cur"].as_str(), bids(&body)[0]["price"].as_f64()), (Some("EUR"), Some(2.25)));
    // A currency we have no rate for: no bid.
    req["cur"] = json!(["JPY"]);
    assert_eq!(reason(&b.bid(&req).await).expect("nbr").1["reason"], "currency_not_supported");
    // wseat without our seat: no bid.
    let mut req = banner("seat");
    req["wseat"] = json!(["someone-else"]);
    assert_eq!(reason(&b.bid(&req).await).expect("nbr").1["reason"], "seat_not_allowed");
    // tmax already spent by the network allowance (20 ms): nbr 15, answered, not late.
    let mut req = banner("tmax");
    req["tmax"] = json!(10);
    let r = b.bid(&req).await;
    assert_eq!(reason(&r).expect("nbr").0, Some(15));
    // A crawler: nbr 3.
    let mut req = banner("bot");
    req["device"]["ua"] = json!("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
    assert_eq!(reason(&b.bid(&req).await).expect("nbr").0, Some(3));
    // Invalid per the spec: nbr 2 naming the field.
    let r = b.bid(&json!({"id": "x", "imp": []})).await;
    let (nbr, ext) = reason(&r).expect("nbr");
    assert_eq!((nbr, ext["field"].as_str()), (Some(2), Some("imp")));
}

#[tokio::test]
async fn malformed_and_invalid_requests_are_client_errors_naming_the_field() {
    let server = Server::start(&["--demo"]);
    let b = Bidder::new(&server);
    let r = b.post_raw(b"{\"id\": \"x\", \"imp\": [".to_vec(), &[("content-type", "application/json")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body.expect("error")["error"]["code"], "malformed_json");
    let r = b.bid(&json!({"id": "x", "imp": [{"id": "1", "video": {"mimes": []}}]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = r.body.expect("error");
    assert_eq!(e["error"]["field"], "imp[0].video.mimes", "{e}");
    let r = b.bid(&json!({"id": "x", "imp": [{"id": "1", "banner": {"w": "wide"}}]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body.expect("error")["error"]["field"], "imp[0].banner.w");
}

/// The bidder skips the fields it never reads (`adp_openrtb::parse_request_for_bidding`): a
/// value of the wrong type there does not cost the exchange its bid, while the same slip in a
/// field the bidder reads, or broken JSON anywhere, is still a 400 naming the problem.
#[tokio::test]
async fn type_slips_in_fields_the_bidder_does_not_read_still_get_a_bid() {
    let server = Server::start(&["--demo"]);
    let b = Bidder::new(&server);
    let mut req = banner("slips");
    req["imp"][0]["banner"]["battr"] = json!("none");
    req["imp"][0]["metric"] = json!({"type": 7});
    req["device"]["w"] = json!("wide");
    req["site"]["content"] = json!([1, 2, 3]);
    req["source"] = json!("exchange.example");
    let r = b.bid(&req).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(bids(&r.body.expect("bid")).len(), 1);
    // The full parser (what the load generator and the tests use) still refuses it.
    let text = serde_json::to_vec(&req).expect("json");
    let e = adp_openrtb::parse_request(&text).expect_err("full parse");
    assert!(!e.path.is_empty(), "{e}");

    let mut read = banner("slip-in-read");
    read["device"]["geo"]["country"] = json!({"code": "DEU"});
    let r = b.bid(&read).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body.expect("error")["error"]["field"], "device.geo.country");

    let mut broken = serde_json::to_string(&banner("broken")).expect("json");
    broken = broken.replacen("\"bidfloor\":0.5", "\"bidfloor\":0.5,\"metric\":[1,,2]", 1);
    assert!(broken.contains("[1,,2]"), "{broken}");
    let r = b.post_raw(broken.into_bytes(), &[("content-type", "application/json")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body.expect("error")["error"]["code"], "malformed_json");
}

#[tokio::test]
async fn win_then_billing_books_the_clearing_price_once_even_when_replayed() {
    let server = Server::start(&["--demo"]);
    let b = Bidder::new(&server);
    let admin = server.admin();
    let body = b.bid(&banner("notices")).await.body.expect("bid");
    let bid = bids(&body)[0].clone();
    let line_item = "demo-acme-ron";
    assert_eq!(bid["price"].as_f64(), Some(2.5));
    let fill =
        |url: &str, price: &str| path_of(&url.replace("${AUCTION_PRICE}", price).replace("${AUCTION_LOSS}", "102"));
    // The exchange cleared at 1.75 CPM (second price): a win, then the billing notice.
    let nurl = fill(bid["nurl"].as_str().expect("nurl"), "1.75");
    let burl = fill(bid["burl"].as_str().expect("burl"), "1.75");
    let (status, text) = get(&server.base, &nurl).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    assert_eq!(get(&server.base, &burl).await.0, StatusCode::NO_CONTENT);
    // Replays of either notice are refused and change nothing.
    assert_eq!(get(&server.base, &burl).await.0, StatusCode::CONFLICT);
    assert_eq!(get(&server.base, &nurl).await.0, StatusCode::CONFLICT);
    // A tampered notice is refused.
    let tampered = burl.replacen("p=", "p=x", 1);
    assert_eq!(get(&server.base, &tampered).await.0, StatusCode::BAD_REQUEST);
    // Spend = 1.75 CPM / 1000 = 1,750 micros for one impression, booked from the billing
    // notice only; the bid price (2.50) never counts.
    let (spend, wins, imps) = report_of(&admin, line_item, 1_750).await;
    assert_eq!((spend, wins, imps), (1_750, 1, 1));
    let s = stats(&admin).await;
    assert_eq!((s["wins"].as_u64(), s["billed"].as_u64()), (Some(1), Some(1)));
    // A lost bid: the loss notice is counted once and books nothing.
    let body = b.bid(&banner("lost")).await.body.expect("bid");
    let lurl = fill(bids(&body)[0]["lurl"].as_str().expect("lurl"), "3.10");
    assert_eq!(get(&server.base, &lurl).await.0, StatusCode::NO_CONTENT);
    assert_eq!(get(&server.base, &lurl).await.0, StatusCode::CONFLICT);
    assert_eq!(stats(&admin).await["losses"].as_u64(), Some(1));
    assert_eq!(report_of(&admin, line_item, 1_750).await.0, 1_750);
    // A billing notice without the price substituted cannot be booked: 400, and it may be
    // retried with the price.
    let body = b.bid(&banner("unsubstituted")).await.body.expect("bid");
    let raw = path_of(bids(&body)[0]["burl"].as_str().expect("burl"));
    let (status, text) = get(&server.base, &raw.replace("${AUCTION_PRICE}", "%24%7BAUCTION_PRICE%7D")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let fixed = fill(bids(&body)[0]["burl"].as_str().expect("burl"), "2.5");
    assert_eq!(get(&server.base, &fixed).await.0, StatusCode::NO_CONTENT);
    assert_eq!(report_of(&admin, line_item, 4_250).await.0, 4_250);
}

/// The click tracker in a bid's markup: a click redirects to the creative's landing page and
/// is counted once (a replay is refused); the bid's price never spends on a click.
#[tokio::test]
async fn a_bids_click_tracker_redirects_and_counts_once() {
    let server = Server::start(&["--demo"]);
    let b = Bidder::new(&server);
    let admin = server.admin();
    let body = b.bid(&banner("clicked")).await.body.expect("bid");
    let adm = bids(&body)[0]["adm"].as_str().expect("adm").to_string();
    let at = adm.find("/v1/t/click?").expect("a click tracker in the markup");
    let end = adm[at..].find('"').map_or(adm.len(), |e| at + e);
    // The markup has the URL HTML-escaped.
    let click = adm[at..end].replace("&amp;", "&");
    assert!(click.contains("&s="), "{click}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let r = http.get(format!("{}{click}", server.base)).send().await.expect("click");
    assert_eq!(r.status(), StatusCode::FOUND);
    let landing = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(landing.starts_with("https://"), "redirects to the landing page: {landing:?}");
    let replay = http.get(format!("{}{click}", server.base)).send().await.expect("replay");
    assert!(replay.status().is_client_error(), "a replayed click is refused: {}", replay.status());
    // A click URL with the impression's path is not an impression.
    let as_imp = click.replacen("/v1/t/click?", "/v1/t/imp?", 1);
    assert!(http.get(format!("{}{as_imp}", server.base)).send().await.expect("imp").status().is_client_error());
    let s = stats(&admin).await;
    assert_eq!((s["clicks"].as_u64(), s["impressions"].as_u64()), (Some(1), Some(0)), "{s}");
    // Once the click is in the delivery report, the line item's spend there is still zero.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (clicks, spend) = loop {
        let r = admin.get("/api/v1/reports/delivery").await;
        let rows = r.body["rows"].as_array().cloned().unwrap_or_default();
        let mine: Vec<&Value> = rows.iter().filter(|row| row["line_item_id"] == "demo-acme-ron").collect();
        let clicks = mine.iter().map(|row| row["clicks"].as_u64().unwrap_or(0)).sum::<u64>();
        let spend = mine.iter().map(|row| row["spend_micros"].as_i64().unwrap_or(0)).sum::<i64>();
        if clicks >= 1 || Instant::now() > deadline {
            break (clicks, spend);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((clicks, spend), (1, 0), "the click is reported and a click on a bid spends nothing");
}

/// `rtb.adm_in_win_notice = true`: the bid has no `adm`; the win notice answers with the
/// markup, whose click tracker works like a bid's own.
#[tokio::test]
async fn the_win_notice_carries_the_markup_when_adm_is_left_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::spawn(
        &tmp.path().join("data"),
        &["--admin-key", common::ADMIN_KEY, "--demo"],
        &[("ADP_RTB_ADM_IN_WIN_NOTICE", "true")],
    );
    let b = Bidder::new(&server);
    let body = b.bid(&banner("nurl-only")).await.body.expect("bid");
    let bid = bids(&body)[0].clone();
    assert!(bid.get("adm").is_none_or(Value::is_null), "no adm: {bid}");
    let nurl = path_of(&bid["nurl"].as_str().expect("nurl").replace("${AUCTION_PRICE}", "1.5"));
    let (status, markup) = get(&server.base, &nurl).await;
    assert_eq!(status, StatusCode::OK, "{markup}");
    let at = markup.find("/v1/t/click?").expect("a click tracker in the win notice's markup");
    let end = markup[at..].find('"').map_or(markup.len(), |e| at + e);
    let click = markup[at..end].replace("&amp;", "&");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let r = http.get(format!("{}{click}", server.base)).send().await.expect("click");
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(stats(&server.admin()).await["clicks"].as_u64(), Some(1));
}

/// An exchange's ids are cut to 128 characters where they go into signed URLs: a request with
/// very long site and publisher ids still gets a click tracker that works.
#[tokio::test]
async fn very_long_exchange_ids_do_not_break_the_click_tracker() {
    let server = Server::start(&["--demo"]);
    let b = Bidder::new(&server);
    let mut req = banner("long-ids");
    req["site"]["id"] = json!("s".repeat(3000));
    req["site"]["publisher"]["id"] = json!("p".repeat(3000));
    let body = b.bid(&req).await.body.expect("bid");
    let adm = bids(&body)[0]["adm"].as_str().expect("adm").to_string();
    let at = adm.find("/v1/t/click?").expect("a click tracker in the markup");
    let end = adm[at..].find('"').map_or(adm.len(), |e| at + e);
    let click = adm[at..end].replace("&amp;", "&");
    assert!(click.len() < 2000, "ids are cut in the URL: {} bytes", click.len());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let r = http.get(format!("{}{click}", server.base)).send().await.expect("click");
    assert_eq!(r.status(), StatusCode::FOUND);
    let nurl = path_of(&bids(&body)[0]["nurl"].as_str().expect("nurl").replace("${AUCTION_PRICE}", "1.5"));
    assert!(nurl.len() < 2000, "ids are cut in the notices too: {} bytes", nurl.len());
    assert_eq!(get(&server.base, &nurl).await.0, StatusCode::NO_CONTENT);
}

/// Many bid requests at once on one serving thread, answered in batches (`server.batch_requests`,
/// the default) and one by one: each gets its own answer (its id, its imp, a bid; a no-bid for
/// a floor above every rate; a 400 for broken JSON). With batching on, some requests shared a
/// batch; with it off, none went through one.
#[tokio::test]
async fn concurrent_bids_on_one_thread_each_get_their_own_answer_batched_or_not() {
    for batch in [true, false] {
        let server = Server::one_thread_demo(batch);
        let http = reqwest::Client::new();
        let (mut sent, mut bid_count) = (0u64, 0u64);
        for round in 0..20 {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..48 {
                let b = Bidder { base: server.base.clone(), http: http.clone() };
                set.spawn(async move {
                    let id = format!("r{round}-{i}");
                    let mut req = banner(&id);
                    req["imp"][0]["id"] = json!(format!("imp-{i}"));
                    let reply = match i % 3 {
                        0 => b.bid(&req).await,
                        1 => {
                            req["imp"][0]["bidfloor"] = json!(1000.0);
                            b.bid(&req).await
                        }
                        _ => b.post_raw(format!("{{\"id\":\"{id}\",\"imp\":[").into_bytes(), &[]).await,
                    };
                    (i, id, reply)
                });
            }
            while let Some(done) = set.join_next().await {
                let (i, id, r) = done.expect("request task");
                match i % 3 {
                    0 => {
                        assert_eq!(r.status, StatusCode::OK, "{id}: {:?}", r.body);
                        let body = r.body.expect("body");
                        assert_eq!(body["id"], json!(id));
                        let b = bids(&body);
                        assert_eq!(b.len(), 1, "{body}");
                        assert_eq!(b[0]["impid"], json!(format!("imp-{i}")), "{body}");
                    }
                    1 => assert_eq!(r.status, StatusCode::NO_CONTENT, "{id}: {:?}", r.body),
                    _ => {
                        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{id}");
                        assert_eq!(r.body.expect("error body")["error"]["code"], "malformed_json");
                    }
                }
            }
            sent += 48;
            bid_count += 16;
            let st = stats(&server.admin()).await;
            assert_eq!(st["bids"].as_u64(), Some(bid_count), "{st}");
            if common::batched_enough(&st, sent, round, batch) {
                break;
            }
        }
    }
}
