//! openrtb: the exchange side of a scenario — the `[openrtb]` table (imp templates, auction
//! settings, privacy and identity mixes) and the sampler that turns it into OpenRTB 2.6 bid
//! requests. Everything that does not change between requests (imps with their native request
//! strings and deals, sites and apps, escaped strings) is rendered to JSON once, up front; a
//! request is those fragments joined with the few fields drawn for it (ids, user, device, geo,
//! tmax, privacy, blocks), so building one costs a few hundred nanoseconds. Pure CPU: no I/O,
//! never awaits.
//!
//! # Schema (with `[target] kind = "openrtb"`)
//!
//! ```toml
//! [openrtb]
//! exchange = "exchange.example"       # the schain node and user.data provider (default)
//! tmax_ms = { min = 120, max = 300 }  # each request's tmax, drawn uniformly (default 200..200)
//! at = 1                              # auction type: 1 first price (default), 2 second price
//! cur = ["USD"]                       # currencies the exchange accepts (default USD)
//! gzip_share = 0.2                    # requests sent gzip-compressed (Content-Encoding: gzip)
//! consent_share = 0.9                 # GDPR requests (users in the EEA, UK, CH) with a TCF consent string
//! eid_sources = ["id5-sync.com"]      # identity providers; each user is known to each one
//! eid_share = 0.4                     #   with this probability (stable per user)
//! bcat = ["IAB25", "IAB26"]           # blocked categories, sent on `bcat_share` of requests
//! bcat_share = 0.3
//! badv = ["competitor.example"]       # blocked advertiser domains, on `badv_share` of requests
//! badv_share = 0.1
//!
//! [openrtb.imps.mrec]                 # an imp template, named for pages and apps (`imps = ["mrec"]`)
//! kind = "banner"                     # banner | video | native
//! sizes = ["300x250", "300x600"]      # banner: banner.format (first one is w/h); video: the player size
//! tagid = "news-mrec"                 # optional
//! bidfloor = 0.5                      # optional CPM, in `bidfloorcur` (default USD)
//! pos = 1                             # optional ad position
//! deals = [{ id = "demo-deal-1", bidfloor = 1.0 }]  # imp.pmp.deals
//! deal_share = 0.3                    # share of requests for this imp that carry the pmp (default 1)
//! private_auction = 0                 # 1: only the deals may bid
//!
//! [openrtb.imps.preroll]
//! kind = "video"
//! sizes = ["640x360"]
//! mimes = ["video/mp4"]               # required for video
//! minduration = 5                     # seconds
//! maxduration = 30
//! protocols = [2, 3, 5, 6, 7, 8]      # VAST versions (AdCOM creative subtypes)
//! plcmt = 1                           # 1 instream, 2 accompanying, 3 interstitial, 4 standalone
//! rewarded = false                    # imp.rwdd
//!
//! [openrtb.imps.infeed]
//! kind = "native"
//! assets = ["title", "image", "icon", "sponsored", "description", "cta"]  # Native 1.2 request assets (default: all but cta)
//! ```
//!
//! Pages become `site` objects (domain and publisher from the URL), apps `app` objects (with
//! store URL); both list their imps in `imps`. Key-values become `keywords`; the user's segments
//! `user.data`; users are `user.id` `u<rank>` and `user.buyeruid` `b<rank>`.

use crate::scenario::{invalid, share, DelaySpec, Scenario, ScenarioError, UserSampler, Weighted};
use flate2::write::GzEncoder;
use flate2::Compression;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

/// Most imps one bid request carries.
pub const MAX_IMPS: usize = 16;

/// Countries where GDPR applies to the request (EEA, United Kingdom, Switzerland).
const GDPR_COUNTRIES: &[&str] = &[
    "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GR", "HR", "HU", "IE", "IS", "IT",
    "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// A TCF 2.2 consent string of realistic length (the bidder only checks that one is there).
const CONSENT: &str = "CQHkxEAQHkxEAAHABBENBPFsAP_gAEPgAAiQKcNV_G__bWlr8X73aftkeY1P9_h77sQxBhbJE-4FzLvW_JwXx2ExNA36tqIKmRIEu3bBIQNlHJDUTVCgaogVryDMakWcgTNKJ6BkiFMRO2dYCF5vmQtj-QKY5vr993dx2B-t_dv83dzyz4VHn3a5_2e0WJCdA58tDfv9bROb-9IPd_58v4v0_F_rE2_eT1l_tevp7D9-ct87_XW-9_fff79Ll9-goqAWYaFRAHWBISEGgYEQIAVBWEBFAgAAABIGiAgBMGBTsDAJdYSIAQAoABggBAACjIAEAAAEACEQAQAFAgAAgECgABAAgEAgIIAAAAAEBAAAAAAAAAAAAAAAAAAA";

/// First octets of the (truncated) user IPs: public unicast ranges.
const IP_FIRST_OCTETS: &[u8] = &[
    23, 24, 31, 37, 46, 50, 62, 63, 64, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85,
    86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 104, 107, 108, 109, 151, 173, 174, 176, 178, 185, 188, 193,
    194, 195, 212, 213, 217,
];

fn default_exchange() -> String {
    "exchange.example".into()
}

fn default_tmax() -> DelaySpec {
    DelaySpec { min: 200, max: 200 }
}

fn default_at() -> u8 {
    1
}

fn default_cur() -> Vec<String> {
    vec!["USD".into()]
}

fn one() -> f64 {
    1.0
}

/// The `[openrtb]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRtbSpec {
    #[serde(default = "default_exchange")]
    pub exchange: String,
    #[serde(default = "default_tmax")]
    pub tmax_ms: DelaySpec,
    #[serde(default = "default_at")]
    pub at: u8,
    #[serde(default = "default_cur")]
    pub cur: Vec<String>,
    #[serde(default)]
    pub gzip_share: f64,
    #[serde(default = "one")]
    pub consent_share: f64,
    #[serde(default)]
    pub eid_sources: Vec<String>,
    #[serde(default)]
    pub eid_share: f64,
    #[serde(default)]
    pub bcat: Vec<String>,
    #[serde(default)]
    pub bcat_share: f64,
    #[serde(default)]
    pub badv: Vec<String>,
    #[serde(default)]
    pub badv_share: f64,
    pub imps: BTreeMap<String, ImpSpec>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImpKind {
    Banner,
    Video,
    Native,
}

/// Assets of a Native 1.2 request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NativeAsset {
    Title,
    Image,
    Icon,
    Sponsored,
    Description,
    Cta,
}

/// One imp template.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpSpec {
    pub kind: ImpKind,
    #[serde(default)]
    pub sizes: Vec<String>,
    #[serde(default)]
    pub tagid: Option<String>,
    #[serde(default)]
    pub bidfloor: Option<f64>,
    #[serde(default)]
    pub bidfloorcur: Option<String>,
    #[serde(default)]
    pub pos: Option<u8>,
    #[serde(default)]
    pub mimes: Vec<String>,
    #[serde(default)]
    pub minduration: Option<u32>,
    #[serde(default)]
    pub maxduration: Option<u32>,
    #[serde(default)]
    pub protocols: Vec<u8>,
    #[serde(default)]
    pub plcmt: Option<u8>,
    #[serde(default)]
    pub rewarded: bool,
    #[serde(default)]
    pub assets: Vec<NativeAsset>,
    #[serde(default)]
    pub deals: Vec<DealSpec>,
    #[serde(default = "one")]
    pub deal_share: f64,
    #[serde(default)]
    pub private_auction: u8,
}

/// A deal offered in `imp.pmp.deals`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealSpec {
    pub id: String,
    #[serde(default)]
    pub bidfloor: Option<f64>,
    #[serde(default)]
    pub bidfloorcur: Option<String>,
}

fn currency_code(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn floor(key: String, v: Option<f64>) -> Result<(), ScenarioError> {
    match v {
        Some(f) if !(f.is_finite() && f >= 0.0) => Err(invalid(key, format!("a CPM >= 0, not {f}"))),
        _ => Ok(()),
    }
}

fn currency(key: String, v: Option<&str>) -> Result<(), ScenarioError> {
    match v {
        Some(c) if !currency_code(c) => Err(invalid(key, "an ISO 4217 code in capitals, e.g. USD")),
        _ => Ok(()),
    }
}

/// `WIDTHxHEIGHT` with both above 0.
pub(crate) fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    let (w, h) = (w.parse::<u32>().ok()?, h.parse::<u32>().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

impl OpenRtbSpec {
    pub(crate) fn validate(&self) -> Result<(), ScenarioError> {
        if self.exchange.trim().is_empty() {
            return Err(invalid("openrtb.exchange", "the exchange's domain, e.g. exchange.example"));
        }
        let t = self.tmax_ms;
        if t.min == 0 || t.min > t.max {
            return Err(invalid("openrtb.tmax_ms.min", "at least 1 and at most max"));
        }
        if t.max > 10_000 {
            return Err(invalid("openrtb.tmax_ms.max", "at most 10000 ms"));
        }
        if !matches!(self.at, 1 | 2) {
            return Err(invalid("openrtb.at", "1 (first price) or 2 (second price)"));
        }
        if self.cur.is_empty() {
            return Err(invalid("openrtb.cur", "at least one currency, e.g. [\"USD\"]"));
        }
        for (i, c) in self.cur.iter().enumerate() {
            currency(format!("openrtb.cur[{i}]"), Some(c))?;
        }
        share("openrtb.gzip_share", self.gzip_share)?;
        share("openrtb.consent_share", self.consent_share)?;
        share("openrtb.eid_share", self.eid_share)?;
        share("openrtb.bcat_share", self.bcat_share)?;
        share("openrtb.badv_share", self.badv_share)?;
        for (key, list, rate) in [
            ("eid_sources", &self.eid_sources, self.eid_share),
            ("bcat", &self.bcat, self.bcat_share),
            ("badv", &self.badv, self.badv_share),
        ] {
            if rate > 0.0 && list.is_empty() {
                return Err(invalid(format!("openrtb.{key}"), "at least one entry (its share is above 0)"));
            }
            if let Some(i) = list.iter().position(|v| v.trim().is_empty()) {
                return Err(invalid(format!("openrtb.{key}[{i}]"), "a non-empty string"));
            }
        }
        if self.imps.is_empty() {
            return Err(invalid("openrtb.imps", "at least one imp template, e.g. [openrtb.imps.mrec]"));
        }
        for (name, imp) in &self.imps {
            imp.validate(&format!("openrtb.imps.{name}"))?;
        }
        Ok(())
    }
}

impl ImpSpec {
    fn validate(&self, key: &str) -> Result<(), ScenarioError> {
        for (j, s) in self.sizes.iter().enumerate() {
            if parse_size(s).is_none() {
                return Err(invalid(format!("{key}.sizes[{j}]"), "WIDTHxHEIGHT, e.g. 300x250"));
            }
        }
        floor(format!("{key}.bidfloor"), self.bidfloor)?;
        currency(format!("{key}.bidfloorcur"), self.bidfloorcur.as_deref())?;
        let only = |field: &str, set: bool, kind: &str| {
            if set {
                Err(invalid(format!("{key}.{field}"), format!("only for {kind} imps")))
            } else {
                Ok(())
            }
        };
        let video = self.kind == ImpKind::Video;
        only("mimes", !video && !self.mimes.is_empty(), "video")?;
        only("minduration", !video && self.minduration.is_some(), "video")?;
        only("maxduration", !video && self.maxduration.is_some(), "video")?;
        only("protocols", !video && !self.protocols.is_empty(), "video")?;
        only("plcmt", !video && self.plcmt.is_some(), "video")?;
        only("assets", self.kind != ImpKind::Native && !self.assets.is_empty(), "native")?;
        only("sizes", self.kind == ImpKind::Native && !self.sizes.is_empty(), "banner and video")?;
        match self.kind {
            ImpKind::Banner if self.sizes.is_empty() => {
                return Err(invalid(format!("{key}.sizes"), "at least one size for a banner, e.g. [\"300x250\"]"));
            }
            ImpKind::Video => {
                if self.mimes.is_empty() {
                    return Err(invalid(format!("{key}.mimes"), "at least one MIME type, e.g. [\"video/mp4\"]"));
                }
                if self.sizes.len() > 1 {
                    return Err(invalid(format!("{key}.sizes"), "one player size for a video imp"));
                }
                if let (Some(min), Some(max)) = (self.minduration, self.maxduration) {
                    if min > max {
                        return Err(invalid(format!("{key}.minduration"), "at most maxduration"));
                    }
                }
                if let Some(i) = self.protocols.iter().position(|p| !(1..=14).contains(p)) {
                    return Err(invalid(format!("{key}.protocols[{i}]"), "an AdCOM creative subtype, 1 to 14"));
                }
                if self.plcmt.is_some_and(|p| !(1..=4).contains(&p)) {
                    return Err(invalid(
                        format!("{key}.plcmt"),
                        "1 instream, 2 accompanying, 3 interstitial, 4 standalone",
                    ));
                }
            }
            _ => {}
        }
        share(&format!("{key}.deal_share"), self.deal_share)?;
        if self.private_auction > 1 {
            return Err(invalid(format!("{key}.private_auction"), "0 or 1"));
        }
        if self.private_auction == 1 && self.deals.is_empty() {
            return Err(invalid(format!("{key}.private_auction"), "a private auction needs deals"));
        }
        for (j, d) in self.deals.iter().enumerate() {
            if d.id.trim().is_empty() {
                return Err(invalid(format!("{key}.deals[{j}].id"), "a deal id"));
            }
            floor(format!("{key}.deals[{j}].bidfloor"), d.bidfloor)?;
            currency(format!("{key}.deals[{j}].bidfloorcur"), d.bidfloorcur.as_deref())?;
        }
        Ok(())
    }

    /// The imp as JSON, with or without its pmp.
    fn render(&self, id: usize, gpid: &str, with_deals: bool) -> String {
        let mut imp = json!({"id": id.to_string(), "secure": 1, "instl": 0,
                             "metric": [{"type": "viewability", "value": 0.68, "vendor": "EXCHANGE"}]});
        let o = imp.as_object_mut();
        let Some(o) = o else { return String::new() };
        if let Some(t) = &self.tagid {
            o.insert("tagid".into(), json!(t));
        }
        if let Some(f) = self.bidfloor {
            o.insert("bidfloor".into(), json!(f));
            o.insert("bidfloorcur".into(), json!(self.bidfloorcur.as_deref().unwrap_or("USD")));
        }
        let sizes: Vec<(u32, u32)> = self.sizes.iter().filter_map(|s| parse_size(s)).collect();
        match self.kind {
            ImpKind::Banner => {
                let (w, h) = sizes.first().copied().unwrap_or((300, 250));
                let mut b = json!({
                    "format": sizes.iter().map(|(w, h)| json!({"w": w, "h": h})).collect::<Vec<_>>(),
                    "w": w, "h": h, "battr": [1, 3, 8, 10], "api": [3, 5, 6, 7], "topframe": 1,
                });
                if let Some(p) = self.pos {
                    b["pos"] = json!(p);
                }
                o.insert("banner".into(), b);
            }
            ImpKind::Video => {
                let (w, h) = sizes.first().copied().unwrap_or((640, 360));
                let mut v = json!({
                    "mimes": self.mimes, "w": w, "h": h, "startdelay": 0, "linearity": 1,
                    "skip": 1, "skipmin": 15, "skipafter": 5, "playbackmethod": [1], "delivery": [2], "api": [2, 7],
                });
                if let Some(d) = self.minduration {
                    v["minduration"] = json!(d);
                }
                if let Some(d) = self.maxduration {
                    v["maxduration"] = json!(d);
                }
                if !self.protocols.is_empty() {
                    v["protocols"] = json!(self.protocols);
                }
                if let Some(p) = self.plcmt {
                    v["plcmt"] = json!(p);
                }
                if let Some(p) = self.pos {
                    v["pos"] = json!(p);
                }
                o.insert("video".into(), v);
                if self.rewarded {
                    o.insert("rwdd".into(), json!(1));
                }
            }
            ImpKind::Native => {
                o.insert(
                    "native".into(),
                    json!({"request": native_request(&self.assets), "ver": "1.2", "api": [3, 5]}),
                );
            }
        }
        if with_deals && !self.deals.is_empty() {
            let deals: Vec<Value> = self
                .deals
                .iter()
                .map(|d| {
                    let mut deal = json!({"id": d.id, "at": 1});
                    if let Some(f) = d.bidfloor {
                        deal["bidfloor"] = json!(f);
                        deal["bidfloorcur"] = json!(d.bidfloorcur.as_deref().unwrap_or("USD"));
                    }
                    deal
                })
                .collect();
            o.insert("pmp".into(), json!({"private_auction": self.private_auction, "deals": deals}));
        }
        o.insert("ext".into(), json!({"gpid": gpid}));
        imp.to_string()
    }
}

/// A Native 1.2 request string with the given assets (default: title, main image, icon,
/// sponsored-by and description).
fn native_request(assets: &[NativeAsset]) -> String {
    use NativeAsset::*;
    let default = [Title, Image, Icon, Sponsored, Description];
    let assets = if assets.is_empty() { &default[..] } else { assets };
    let list: Vec<Value> = assets
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let id = i + 1;
            match a {
                Title => json!({"id": id, "required": 1, "title": {"len": 90}}),
                Image => json!({"id": id, "required": 1, "img": {"type": 3, "wmin": 600, "hmin": 315}}),
                Icon => json!({"id": id, "required": 0, "img": {"type": 1, "w": 80, "h": 80}}),
                Sponsored => json!({"id": id, "required": 1, "data": {"type": 1, "len": 25}}),
                Description => json!({"id": id, "required": 0, "data": {"type": 2, "len": 140}}),
                Cta => json!({"id": id, "required": 0, "data": {"type": 12, "len": 15}}),
            }
        })
        .collect();
    json!({"ver": "1.2", "context": 2, "contextsubtype": 20, "plcmttype": 1, "plcmtcnt": 1, "assets": list,
           "eventtrackers": [{"event": 1, "methods": [1, 2]}], "privacy": 1})
    .to_string()
}

/// A JSON string literal, quotes included.
fn quoted(s: &str) -> String {
    Value::from(s).to_string()
}

/// Stable 64-bit mix of a number (splitmix64's finaliser).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn short_hash(s: &str) -> u32 {
    s.bytes().fold(0x811C_9DC5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// AdCOM device type of a targeting device type name.
fn devicetype(name: &str) -> u8 {
    match name {
        "phone" => 4,
        "tablet" => 5,
        "desktop" => 2,
        "connected_tv" => 3,
        "connected_device" => 6,
        "set_top_box" => 7,
        "ooh" => 8,
        _ => 1,
    }
}

/// The spelling exchanges use for an operating system.
fn os_name(os: &str) -> String {
    match os.to_ascii_lowercase().as_str() {
        "ios" => "iOS".into(),
        "ipados" => "iPadOS".into(),
        "android" => "Android".into(),
        "windows" => "Windows".into(),
        "macos" => "macOS".into(),
        "linux" => "Linux".into(),
        "tvos" => "tvOS".into(),
        _ => os.to_string(),
    }
}

#[derive(Clone, Debug)]
struct Country {
    /// `"DEU"`, quotes included.
    alpha3: String,
    gdpr: bool,
    us: bool,
}

#[derive(Clone, Debug)]
struct DeviceKind {
    code: u8,
    mobile: bool,
    /// `"w":..,"h":..` of a typical screen.
    screen: &'static str,
    /// Escaped User-Agents, quotes included.
    uas: Vec<String>,
}

#[derive(Clone, Debug)]
struct ImpFragment {
    plain: String,
    with_deals: Option<String>,
    deal_share: f64,
}

/// A site or an app with its imps, rendered.
#[derive(Clone, Debug)]
struct Inventory {
    /// `"site":{...` or `"app":{...` without the closing brace (mobile and keywords follow).
    head: String,
    app: bool,
    /// Publisher id, quotes included (the schain's `sid`).
    publisher: String,
    imps: Vec<ImpFragment>,
}

/// Builds bid request bodies from a scenario. Cheap to clone: one per load thread.
#[derive(Clone, Debug)]
pub struct BidRequestSampler {
    users: UserSampler,
    anonymous_share: f64,
    countries: Option<Weighted<Country>>,
    devices: Option<Weighted<DeviceKind>>,
    os: Option<Weighted<String>>,
    languages: Option<Weighted<String>>,
    inventory: Weighted<Inventory>,
    /// Per key-value: escaped values (no quotes) and the share of requests carrying one.
    keywords: Vec<(Vec<String>, f64)>,
    /// Escaped segment ids, quotes included.
    segment_pool: Vec<String>,
    segments: crate::scenario::SegmentsSpec,
    /// `"user.data" provider` entry head.
    data_head: String,
    eid_sources: Vec<String>,
    eid_share: f64,
    /// `"at":1,"cur":["USD"]`.
    auction: String,
    tmax: DelaySpec,
    exchange: String,
    consent_share: f64,
    gzip_share: f64,
    bcat: String,
    bcat_share: f64,
    badv: String,
    badv_share: f64,
}

/// One bid request to send.
#[derive(Debug)]
pub struct BidRequestBody {
    pub body: Vec<u8>,
    pub imps: usize,
    pub tmax_ms: u64,
    pub gzip: bool,
}

fn escaped_inner(s: &str) -> String {
    let q = quoted(s);
    q[1..q.len() - 1].to_string()
}

fn store_url(bundle: &str) -> String {
    if bundle.bytes().all(|b| b.is_ascii_digit()) {
        format!("https://apps.apple.com/app/id{bundle}")
    } else {
        format!("https://play.google.com/store/apps/details?id={bundle}")
    }
}

fn page_domain(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    host.split(':').next().unwrap_or(host).to_ascii_lowercase()
}

impl BidRequestSampler {
    /// Builds the sampler of a validated scenario with `[target] kind = "openrtb"`.
    pub fn new(s: &Scenario) -> Result<BidRequestSampler, ScenarioError> {
        let spec = s.openrtb.as_ref().ok_or_else(|| invalid("openrtb", "the [openrtb] table with imp templates"))?;
        let users = UserSampler::new(s.users.count, s.users.zipf_exponent)
            .ok_or_else(|| invalid("users.zipf_exponent", "not a usable Zipf distribution"))?;
        let mut countries = Vec::new();
        for (code, w) in &s.geo.countries {
            let c = isocountry::CountryCode::for_alpha2(code)
                .map_err(|_| invalid(format!("geo.countries.{code}"), "a known ISO 3166-1 alpha-2 code"))?;
            countries.push((
                Country { alpha3: quoted(c.alpha3()), gdpr: GDPR_COUNTRIES.contains(&code.as_str()), us: code == "US" },
                *w,
            ));
        }
        let devices = s.device.types.iter().map(|(t, w)| {
            let uas = s.device.user_agents.get(t).map(|u| u.iter().map(|ua| quoted(ua)).collect()).unwrap_or_default();
            let screen = match t.as_str() {
                "phone" => "\"w\":390,\"h\":844,\"pxratio\":3.0",
                "tablet" => "\"w\":820,\"h\":1180,\"pxratio\":2.0",
                _ => "\"w\":1920,\"h\":1080,\"pxratio\":1.0",
            };
            (DeviceKind { code: devicetype(t), mobile: matches!(t.as_str(), "phone" | "tablet"), screen, uas }, *w)
        });
        let imp = |name: &String| spec.imps.get(name);
        let render_imps = |names: &[String], gpid_base: &str| -> Vec<ImpFragment> {
            names
                .iter()
                .enumerate()
                .filter_map(|(i, n)| imp(n).map(|t| (i, n, t)))
                .map(|(i, name, t)| {
                    let gpid = format!("{gpid_base}#{}", t.tagid.as_deref().unwrap_or(name));
                    ImpFragment {
                        plain: t.render(i + 1, &gpid, false),
                        with_deals: (!t.deals.is_empty()).then(|| t.render(i + 1, &gpid, true)),
                        deal_share: t.deal_share,
                    }
                })
                .collect()
        };
        let pages = s.pages.iter().map(|p| {
            let domain = page_domain(&p.url);
            let h = short_hash(&domain);
            let site = json!({"id": format!("s-{h:08x}"), "name": domain, "domain": domain, "page": p.url,
                              "ref": "https://www.google.com/", "cat": p.cat, "privacypolicy": 1,
                              "publisher": {"id": format!("p-{h:08x}"), "domain": domain}});
            let site = site.to_string();
            let gpid = format!("/{h}/{domain}");
            (
                Inventory {
                    head: format!("\"site\":{}", &site[..site.len() - 1]),
                    app: false,
                    publisher: quoted(&format!("p-{h:08x}")),
                    imps: render_imps(&p.imps, &gpid),
                },
                p.weight,
            )
        });
        let apps = s.apps.iter().map(|a| {
            let h = short_hash(&a.bundle);
            let app = json!({"id": format!("a-{h:08x}"), "name": a.name.as_deref().unwrap_or(&a.bundle),
                             "bundle": a.bundle, "storeurl": store_url(&a.bundle), "cat": a.cat, "ver": "3.14.0",
                             "privacypolicy": 1, "paid": 0, "publisher": {"id": format!("p-{h:08x}")}});
            let app = app.to_string();
            let gpid = format!("/{h}/{}", a.bundle);
            (
                Inventory {
                    head: format!("\"app\":{}", &app[..app.len() - 1]),
                    app: true,
                    publisher: quoted(&format!("p-{h:08x}")),
                    imps: render_imps(&a.imps, &gpid),
                },
                a.weight,
            )
        });
        let inventory = Weighted::new(pages.chain(apps))
            .ok_or_else(|| invalid("pages", "the weights of pages and apps add up to 0"))?;
        let list = |v: &[String]| Value::from(v.to_vec()).to_string();
        Ok(BidRequestSampler {
            users,
            anonymous_share: s.users.anonymous_share,
            countries: Weighted::new(countries),
            devices: Weighted::new(devices),
            os: Weighted::new(s.device.os.iter().map(|(k, w)| (quoted(&os_name(k)), *w))),
            languages: Weighted::new(s.device.languages.iter().map(|(k, w)| (quoted(k), *w))),
            inventory,
            keywords: s
                .key_values
                .iter()
                .map(|kv| (kv.values.iter().map(|v| escaped_inner(v)).collect(), kv.share))
                .collect(),
            segment_pool: s.segments.pool.iter().map(|p| quoted(p)).collect(),
            segments: s.segments.clone(),
            data_head: format!(
                "{{\"id\":\"dp-1\",\"name\":{},\"segment\":[",
                quoted(&format!("segments.{}", spec.exchange))
            ),
            eid_sources: spec.eid_sources.iter().map(|e| quoted(e)).collect(),
            eid_share: spec.eid_share,
            auction: format!("\"at\":{},\"cur\":{}", spec.at, list(&spec.cur)),
            tmax: spec.tmax_ms,
            exchange: quoted(&spec.exchange),
            consent_share: spec.consent_share,
            gzip_share: spec.gzip_share,
            bcat: format!(",\"bcat\":{}", list(&spec.bcat)),
            bcat_share: spec.bcat_share,
            badv: format!(",\"badv\":{}", list(&spec.badv)),
            badv_share: spec.badv_share,
        })
    }

    /// Draws one bid request.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> BidRequestBody {
        let mut b = String::with_capacity(4096);
        let inv = self.inventory.sample(rng);
        let id = rng.next_u64();
        let id2 = rng.next_u64();
        let tmax =
            if self.tmax.max > self.tmax.min { rng.random_range(self.tmax.min..=self.tmax.max) } else { self.tmax.min };
        let _ = write!(b, "{{\"id\":\"{id:016x}{id2:016x}\",{},\"tmax\":{tmax},\"imp\":[", self.auction);
        for (i, imp) in inv.imps.iter().enumerate() {
            if i > 0 {
                b.push(',');
            }
            let deals = imp.with_deals.as_ref().filter(|_| imp.deal_share >= 1.0 || rng.random_bool(imp.deal_share));
            b.push_str(deals.unwrap_or(&imp.plain));
        }
        b.push_str("],");
        b.push_str(&inv.head);
        let device = self.devices.as_ref().map(|d| d.sample(rng));
        if device.is_some_and(|d| d.mobile) {
            b.push_str(",\"mobile\":1");
        }
        let mut first = true;
        for (values, share) in &self.keywords {
            if *share >= 1.0 || rng.random_bool(*share) {
                b.push_str(if first { ",\"keywords\":\"" } else { "," });
                b.push_str(&values[rng.random_range(0..values.len())]);
                first = false;
            }
        }
        if !first {
            b.push('"');
        }
        b.push('}');

        let user =
            (self.anonymous_share == 0.0 || !rng.random_bool(self.anonymous_share)).then(|| self.users.sample(rng));
        let country = self.countries.as_ref().map(|c| c.sample(rng));
        // device
        b.push_str(",\"device\":{");
        let mut sep = "";
        if let Some(d) = device {
            if !d.uas.is_empty() {
                let _ = write!(b, "\"ua\":{},", d.uas[rng.random_range(0..d.uas.len())]);
            }
            let _ = write!(b, "\"devicetype\":{},{}", d.code, d.screen);
            sep = ",";
        }
        let ip = mix(user.unwrap_or_else(|| rng.next_u64()));
        let _ = write!(
            b,
            "{sep}\"ip\":\"{}.{}.{}.0\"",
            IP_FIRST_OCTETS[(ip % IP_FIRST_OCTETS.len() as u64) as usize],
            (ip >> 16) & 0xFF,
            (ip >> 24) & 0xFF
        );
        if let Some(os) = &self.os {
            let _ = write!(b, ",\"os\":{}", os.sample(rng));
        }
        if let Some(l) = &self.languages {
            let _ = write!(b, ",\"language\":{}", l.sample(rng));
        }
        b.push_str(",\"dnt\":0");
        if inv.app {
            b.push_str(",\"connectiontype\":6");
            if let Some(rank) = user {
                let (a, c) = (mix(rank ^ 0xA5A5), mix(rank ^ 0x5A5A));
                let _ = write!(
                    b,
                    ",\"ifa\":\"{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}\",\"lmt\":0",
                    a >> 32,
                    a & 0xFFFF,
                    (a >> 16) & 0xFFF,
                    c & 0xFFF,
                    c >> 16
                );
            }
        } else {
            b.push_str(",\"js\":1,\"connectiontype\":2");
        }
        if let Some(c) = country {
            let _ = write!(b, ",\"geo\":{{\"country\":{},\"type\":2}}", c.alpha3);
        }
        b.push('}');
        // user
        let gdpr = country.is_some_and(|c| c.gdpr);
        if let Some(rank) = user {
            let _ = write!(b, ",\"user\":{{\"id\":\"u{rank}\",\"buyeruid\":\"b{rank}\"");
            if gdpr && (self.consent_share >= 1.0 || rng.random_bool(self.consent_share)) {
                let _ = write!(b, ",\"consent\":\"{CONSENT}\"");
            }
            let segs = crate::scenario::user_segment_indices(&self.segments, rank);
            if !segs.is_empty() {
                b.push_str(",\"data\":[");
                b.push_str(&self.data_head);
                for (i, s) in segs.iter().enumerate() {
                    let _ = write!(b, "{}{{\"id\":{}}}", if i > 0 { "," } else { "" }, self.segment_pool[*s]);
                }
                b.push_str("]}]");
            }
            let mut first = true;
            for (i, source) in self.eid_sources.iter().enumerate() {
                let h = mix(rank.wrapping_mul(31).wrapping_add(i as u64 + 1));
                if (h >> 11) as f64 / (1u64 << 53) as f64 >= self.eid_share {
                    continue;
                }
                b.push_str(if first { ",\"eids\":[" } else { "," });
                let _ = write!(
                    b,
                    "{{\"source\":{source},\"uids\":[{{\"id\":\"{h:016x}{:08x}\",\"atype\":1}}]}}",
                    mix(h) >> 32
                );
                first = false;
            }
            if !first {
                b.push(']');
            }
            b.push('}');
        }
        // source, regs, blocks
        let (t1, t2) = (rng.next_u64(), rng.next_u64());
        let _ = write!(
            b,
            ",\"source\":{{\"tid\":\"{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}\",\"schain\":{{\"complete\":1,\"ver\":\"1.0\",\"nodes\":[{{\"asi\":{},\"sid\":{},\"hp\":1,\"rid\":\"{id:016x}{id2:016x}\"}}]}}}}",
            t1 >> 32,
            t1 & 0xFFFF,
            (t1 >> 16) & 0xFFF,
            t2 & 0xFFF,
            t2 >> 16,
            self.exchange,
            inv.publisher
        );
        let _ = write!(b, ",\"regs\":{{\"coppa\":0,\"gdpr\":{}", u8::from(gdpr));
        if country.is_some_and(|c| c.us) {
            b.push_str(",\"us_privacy\":\"1YNN\"");
        }
        b.push('}');
        if self.bcat_share > 0.0 && rng.random_bool(self.bcat_share) {
            b.push_str(&self.bcat);
        }
        if self.badv_share > 0.0 && rng.random_bool(self.badv_share) {
            b.push_str(&self.badv);
        }
        b.push('}');

        let gzip = self.gzip_share > 0.0 && rng.random_bool(self.gzip_share);
        let body = if gzip {
            let mut enc = GzEncoder::new(Vec::with_capacity(b.len() / 2), Compression::fast());
            // Writing into a Vec cannot fail.
            let _ = enc.write_all(b.as_bytes());
            enc.finish().unwrap_or_default()
        } else {
            b.into_bytes()
        };
        BidRequestBody { body, imps: inv.imps.len(), tmax_ms: tmax, gzip }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Traffic;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use std::io::Read as _;
    use std::path::Path;

    const RTB: &str = r#"
        name = "t"
        [target]
        kind = "openrtb"
        [users]
        count = 1000
        zipf_exponent = 1.0
        [geo.countries]
        DE = 1
        US = 1
        [device.types]
        phone = 1
        [device.user_agents]
        phone = ["Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"]
        [openrtb]
        tmax_ms = { min = 120, max = 300 }
        eid_sources = ["id5-sync.com"]
        eid_share = 1.0
        [openrtb.imps.mrec]
        kind = "banner"
        sizes = ["300x250"]
        deals = [{ id = "demo-deal-1", bidfloor = 1.0 }]
        deal_share = 0.5
        [openrtb.imps.vid]
        kind = "video"
        mimes = ["video/mp4"]
        [[pages]]
        url = "https://news.example.com/a"
        imps = ["mrec", "vid"]
        [segments]
        pool = ["initech-visitors"]
        per_user_min = 1
        per_user_max = 1
        [callbacks]
        win_rate = 0.5
        billing_rate = 1.0
    "#;

    fn err_key(text: &str) -> String {
        match Scenario::parse(text) {
            Err(ScenarioError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid-key error, got {other:?}"),
        }
    }

    fn json_of(r: &crate::scenario::SampledRequest) -> Value {
        let bytes = if r.gzip {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&r.body[..]).read_to_end(&mut out).expect("gzip");
            out
        } else {
            r.body.clone()
        };
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
    }

    #[test]
    fn an_openrtb_scenario_parses_with_its_defaults() {
        let s = Scenario::parse(RTB).expect("valid");
        assert_eq!(s.target.path, "/openrtb2/bid");
        let o = s.openrtb.as_ref().expect("openrtb");
        assert_eq!((o.at, o.cur.clone(), o.exchange.as_str()), (1, vec!["USD".to_string()], "exchange.example"));
        assert_eq!(s.callbacks.win_notice_rate, 1.0);
        assert_eq!(s.callbacks.clearing_price_ratio, 1.0);
    }

    #[test]
    fn bad_openrtb_scenarios_name_the_key() {
        assert_eq!(
            err_key(&RTB.replace("imps = [\"mrec\", \"vid\"]", "imps = [\"mrec\", \"nope\"]")),
            "pages[0].imps[1]"
        );
        assert_eq!(
            err_key(&RTB.replace("imps = [\"mrec\", \"vid\"]", "placements = [\"demo-mrec\"]")),
            "pages[0].placements"
        );
        assert_eq!(err_key(&RTB.replace("imps = [\"mrec\", \"vid\"]", "")), "pages[0].imps");
        assert_eq!(
            err_key(&RTB.replace("mimes = [\"video/mp4\"]", "mimes = [\"video/mp4\"]\n        assets = [\"title\"]")),
            "openrtb.imps.vid.assets"
        );
        assert_eq!(err_key(&RTB.replace("mimes = [\"video/mp4\"]", "")), "openrtb.imps.vid.mimes");
        assert_eq!(
            err_key(&RTB.replace("sizes = [\"300x250\"]", "sizes = [\"300x250\"]\n        mimes = [\"video/mp4\"]")),
            "openrtb.imps.mrec.mimes"
        );
        assert_eq!(err_key(&RTB.replace("sizes = [\"300x250\"]", "sizes = [\"300x0\"]")), "openrtb.imps.mrec.sizes[0]");
        assert_eq!(err_key(&RTB.replace("deal_share = 0.5", "deal_share = 2")), "openrtb.imps.mrec.deal_share");
        assert_eq!(
            err_key(&RTB.replace("deals = [{ id = \"demo-deal-1\", bidfloor = 1.0 }]", "private_auction = 1")),
            "openrtb.imps.mrec.private_auction"
        );
        assert_eq!(err_key(&RTB.replace("min = 120, max = 300", "min = 300, max = 120")), "openrtb.tmax_ms.min");
        assert_eq!(err_key(&RTB.replace("DE = 1", "XX = 1")), "geo.countries.XX");
        assert_eq!(err_key(&RTB.replace("win_rate = 0.5", "impression_rate = 0.5")), "callbacks.impression_rate");
        assert_eq!(err_key(&RTB.replace("kind = \"openrtb\"", "kind = \"decide\"")), "openrtb");
        assert_eq!(err_key(&RTB.replace("[openrtb]\n", "[openrtb]\n        at = 3\n")), "openrtb.at");
        assert_eq!(err_key(&RTB.replace("eid_sources = [\"id5-sync.com\"]", "")), "openrtb.eid_sources");
        assert_eq!(
            err_key(&RTB.replace("billing_rate = 1.0", "billing_rate = 1.0\n        clearing_price_ratio = 0")),
            "callbacks.clearing_price_ratio"
        );
        // The decide target refuses what only bids need.
        let decide = RTB
            .replace("kind = \"openrtb\"", "kind = \"decide\"")
            .replace("imps = [\"mrec\", \"vid\"]", "placements = [\"demo-mrec\"]");
        let decide = format!(
            "{}{}",
            &decide[..decide.find("[openrtb]").expect("table")],
            &decide[decide.find("[[pages]]").expect("pages")..]
        );
        assert_eq!(err_key(&decide), "callbacks.win_rate");
    }

    #[test]
    fn bid_requests_are_valid_openrtb_and_carry_the_scenario() {
        let s = Scenario::parse(RTB).expect("valid");
        let traffic = Traffic::new(&s).expect("sampler");
        let mut rng = SmallRng::seed_from_u64(5);
        let (mut with_deals, mut de, mut ids) = (0, 0, std::collections::HashSet::new());
        for _ in 0..400 {
            let r = traffic.sample(&mut rng);
            assert_eq!(r.placements, 2);
            let v = json_of(&r);
            let text = v.to_string();
            let mut req = adp_openrtb::parse_request(text.as_bytes()).expect("parses as a BidRequest");
            req.normalize_2_5();
            req.validate().unwrap_or_else(|e| panic!("{e}: {text}"));
            assert!(ids.insert(v["id"].as_str().expect("id").to_string()), "request ids are unique");
            let tmax = v["tmax"].as_u64().expect("tmax");
            assert!((120..=300).contains(&tmax));
            assert_eq!(r.tmax_ms, Some(tmax));
            assert_eq!(v["imp"][0]["id"], "1");
            assert_eq!(v["imp"][0]["banner"]["w"], 300);
            assert_eq!(v["imp"][1]["video"]["mimes"][0], "video/mp4");
            if v["imp"][0]["pmp"]["deals"][0]["id"] == "demo-deal-1" {
                with_deals += 1;
            }
            assert_eq!(v["site"]["domain"], "news.example.com");
            assert_eq!(v["site"]["mobile"], 1);
            assert_eq!(v["device"]["devicetype"], 4);
            assert!(v["device"]["ua"].as_str().is_some_and(|ua| ua.contains("iPhone")));
            let country = v["device"]["geo"]["country"].as_str().expect("country");
            assert!(country == "DEU" || country == "USA", "{country}");
            if country == "DEU" {
                de += 1;
                assert_eq!(v["regs"]["gdpr"], 1);
                assert!(v["user"]["consent"].as_str().is_some_and(|c| c.len() > 100));
            } else {
                assert_eq!(v["regs"]["gdpr"], 0);
                assert_eq!(v["regs"]["us_privacy"], "1YNN");
            }
            let rank = v["user"]["id"].as_str().and_then(|u| u.strip_prefix('u')).expect("user id");
            assert_eq!(v["user"]["buyeruid"], format!("b{rank}"));
            assert_eq!(v["user"]["data"][0]["segment"][0]["id"], "initech-visitors");
            assert_eq!(v["user"]["eids"][0]["source"], "id5-sync.com");
            assert_eq!(v["source"]["schain"]["nodes"][0]["rid"], v["id"]);
            assert!(v.get("bcat").is_none());
        }
        assert!((140..260).contains(&with_deals), "deals on {with_deals} of 400 (share 0.5)");
        assert!((140..260).contains(&de), "DE on {de} of 400");
    }

    #[test]
    fn rtb_mixed_requests_are_realistic_in_size_and_mix() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/scenarios/rtb-mixed.toml");
        let s = Scenario::load(&path).expect("rtb-mixed");
        let traffic = Traffic::new(&s).expect("sampler");
        let mut rng = SmallRng::seed_from_u64(9);
        let mut kinds = BTreeMap::<&str, u32>::new();
        let (mut gz, mut apps, mut native_titles, mut private) = (0, 0, 0, 0);
        let n = 3000;
        for _ in 0..n {
            let r = traffic.sample(&mut rng);
            gz += u32::from(r.gzip);
            let v = json_of(&r);
            let len = v.to_string().len();
            assert!((1000..=4096).contains(&len), "a {len}-byte request: {v}");
            let text = v.to_string();
            let mut req = adp_openrtb::parse_request(text.as_bytes()).expect("parses");
            req.normalize_2_5();
            req.validate().unwrap_or_else(|e| panic!("{e}: {text}"));
            apps += u32::from(v.get("app").is_some());
            for imp in v["imp"].as_array().expect("imps") {
                for k in ["banner", "video", "native"] {
                    if imp.get(k).is_some() {
                        *kinds.entry(k).or_default() += 1;
                    }
                }
                if let Some(n) = imp["native"]["request"].as_str() {
                    let n: Value = serde_json::from_str(n).expect("native request JSON");
                    native_titles += u32::from(n["assets"][0]["title"]["len"] == 90);
                }
                private += u32::from(imp["pmp"]["private_auction"] == 1);
            }
        }
        assert!(kinds.values().all(|c| *c > n / 20), "every format is in the mix: {kinds:?}");
        assert!((n / 5..n / 2).contains(&apps), "{apps} app requests");
        assert!(native_titles > 0 && private > 0);
        assert!((n / 10..n * 3 / 10).contains(&gz), "{gz} gzipped");
    }

    #[test]
    fn building_a_bid_request_is_cheap() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/scenarios/rtb-mixed.toml");
        let mut s = Scenario::load(&path).expect("rtb-mixed");
        if let Some(o) = s.openrtb.as_mut() {
            o.gzip_share = 0.0;
        }
        let traffic = Traffic::new(&s).expect("sampler");
        let mut rng = SmallRng::seed_from_u64(1);
        let n = 20_000;
        let t = std::time::Instant::now();
        let bytes: usize = (0..n).map(|_| traffic.sample(&mut rng).body.len()).sum();
        let per = t.elapsed() / n;
        eprintln!("{per:?} per bid request of {} bytes on average", bytes / n as usize);
        // Generous even for an unoptimised test build on a busy machine.
        assert!(per < std::time::Duration::from_micros(200), "{per:?} per request");
    }
}
