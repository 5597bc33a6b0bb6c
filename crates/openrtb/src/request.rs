//! OpenRTB 2.6 bid request objects (§3.2).
//!
//! Strings are [`Str`] (`Cow<str>`): a parsed request borrows them from the request body,
//! except where the JSON text has escapes (decoded into owned strings) or a number stands for
//! an id (kept as its text); code builds them with `"x".into()` or `String::into()`. Borrowing
//! saves an allocation and a copy per string (the 2.4 KB banner sample parses in 5.0 µs instead
//! of 6.3 with sonic-rs).
//!
//! Every object accepts and ignores fields it does not know (no `deny_unknown_fields`), keeps
//! `ext` as any JSON value, represents integer lists as open newtypes (see [`crate::enums`])
//! and tolerates common type slips of exchanges (see [`crate::de`]). Lists default to empty,
//! optional scalars to `None`; serializing skips both, so a parsed request re-serializes
//! compactly. Field names are the spec's, except `Site::referrer` (`ref`) and `Geo::kind` /
//! `Metric::kind` (`type`).
//!
//! The large optional objects (`site`, `app`, `dooh`, `device`, `user`, `imp.video`,
//! `imp.audio`, `content`) are boxed: it keeps `BidRequest` and `Imp` small to move around
//! (decoding moves every object at least once) and measurably cut decoding work (~5% fewer
//! instructions on the bench samples). Reading is unchanged (`if let Some(d) = &req.device`,
//! `req.site.as_deref()`); building one needs `Box::new`.

use crate::de;
use crate::enums::*;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A string of a parsed request: borrowed from the request body where the JSON text has no
/// escapes (most), owned otherwise or when built in code (`"x".into()`).
pub type Str<'a> = Cow<'a, str>;

/// The top-level bid request (OpenRTB 2.6 §3.2.1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct BidRequest<'a> {
    /// ID of the bid request, assigned by the exchange; required (a missing id parses as "" and fails validation).
    #[serde(default, deserialize_with = "de::cow")]
    pub id: Str<'a>,
    /// The impressions offered; at least one is required.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub imp: Vec<Imp<'a>>,
    /// The website, for site inventory (at most one of `site`, `app`, `dooh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<Box<Site<'a>>>,
    /// The app, for app inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<Box<App<'a>>>,
    /// The digital out-of-home screen, for DOOH inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dooh: Option<Box<Dooh<'a>>>,
    /// The user's device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Box<Device<'a>>>,
    /// The user of the device (the advertising audience).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Box<User<'a>>>,
    /// 1 = test mode: auctions are not billable. Default 0.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub test: Option<i32>,
    /// Auction type: 1 first price, 2 second price plus (default 2), 500+ exchange specific.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<AuctionType>,
    /// Maximum time in milliseconds the exchange allows for bids, including network latency.
    #[serde(default, deserialize_with = "de::opt_i64", skip_serializing_if = "Option::is_none")]
    pub tmax: Option<i64>,
    /// Allowed buyer seats; empty means no restriction.
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub wseat: Vec<Str<'a>>,
    /// Blocked buyer seats.
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub bseat: Vec<Str<'a>>,
    /// 1 = `imp` lists every impression available in the context. Default 0.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub allimps: Option<i32>,
    /// Allowed bid currencies (ISO-4217); empty means USD (see `price::pick_currency`).
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub cur: Vec<Str<'a>>,
    /// Allowed creative languages (ISO-639-1-alpha-2).
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub wlang: Vec<Str<'a>>,
    /// Allowed creative languages (IETF BCP 47); only one of `wlang`/`wlangb` should be present.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub wlangb: Vec<Str<'a>>,
    /// Allowed advertiser categories (taxonomy in `cattax`).
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub acat: Vec<Str<'a>>,
    /// Blocked advertiser categories (taxonomy in `cattax`).
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub bcat: Vec<Str<'a>>,
    /// Taxonomy of `bcat`/`acat`. Default 1.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub cattax: Option<CategoryTaxonomy>,
    /// Blocked advertiser domains (e.g. "ford.com").
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub badv: Vec<Str<'a>>,
    /// Blocked applications by app store ID.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub bapp: Vec<Str<'a>>,
    /// The inventory source and the entity that makes the final decision.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub source: Option<Source<'a>>,
    /// Regulations in force for this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regs: Option<Regs<'a>>,
    /// Exchange-specific extensions; any JSON value is kept.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// Source of the request upstream of the exchange (§3.2.2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Source<'a> {
    /// Final decision: 0 exchange, 1 upstream source.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    /// Transaction ID common to all participants in this request.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub tid: Option<Str<'a>>,
    /// Payment ID chain (TAG Payment ID Protocol).
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub pchain: Option<Str<'a>>,
    /// The supply chain (2.5 requests carry it in `source.ext.schain`; see `BidRequest::normalize_2_5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schain: Option<SupplyChain<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// The supply chain of an impression (§3.2.25, sellers.json/SupplyChain spec).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct SupplyChain<'a> {
    /// 1 = the chain goes back to the owner of the site/app.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub complete: Option<i32>,
    /// The links of the chain, in order, the first being the inventory owner.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<SupplyChainNode<'a>>,
    /// Version of the SupplyChain spec, "1.0".
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub ver: Option<Str<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// One participant of a supply chain (§3.2.26).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct SupplyChainNode<'a> {
    /// Canonical domain of the SSP/exchange/system (as in its ads.txt).
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub asi: Option<Str<'a>>,
    /// Seller/reseller account ID within that system (as in sellers.json).
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub sid: Option<Str<'a>>,
    /// The request ID as issued by this seller.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub rid: Option<Str<'a>>,
    /// Business name of the entity.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// Business domain of the entity.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub domain: Option<Str<'a>>,
    /// 1 = this node is involved in the flow of payment.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub hp: Option<i32>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// Regulations in force (§3.2.3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Regs<'a> {
    /// 1 = subject to COPPA.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub coppa: Option<i32>,
    /// 1 = subject to GDPR (2.5: `regs.ext.gdpr`).
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub gdpr: Option<i32>,
    /// CCPA US Privacy string (2.5: `regs.ext.us_privacy`).
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub us_privacy: Option<Str<'a>>,
    /// Global Privacy Platform consent string.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub gpp: Option<Str<'a>>,
    /// GPP section IDs in force.
    #[serde(default, deserialize_with = "de::vec_int", skip_serializing_if = "Vec::is_empty")]
    pub gpp_sid: Vec<i32>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// One ad placement or impression being auctioned (§3.2.4).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Imp<'a> {
    /// ID of the impression, unique within the request; required.
    #[serde(default, deserialize_with = "de::cow")]
    pub id: Str<'a>,
    /// Metrics the exchange has on this impression (e.g. viewability).
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub metric: Vec<Metric<'a>>,
    /// Present if offered as a banner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banner: Option<Banner<'a>>,
    /// Present if offered as video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<Box<Video<'a>>>,
    /// Present if offered as audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Box<Audio<'a>>>,
    /// Present if offered as native.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<Native<'a>>,
    /// Private marketplace deals in effect for this impression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pmp: Option<Pmp<'a>>,
    /// Name of the ad mediation partner, SDK or player.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub displaymanager: Option<Str<'a>>,
    /// Version of `displaymanager`.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub displaymanagerver: Option<Str<'a>>,
    /// 1 = interstitial or full screen.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub instl: Option<i32>,
    /// Identifier of the ad placement or tag.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub tagid: Option<Str<'a>>,
    /// Minimum bid for this impression, CPM, in `bidfloorcur`. Default 0.
    #[serde(default, deserialize_with = "de::opt_f64", skip_serializing_if = "Option::is_none")]
    pub bidfloor: Option<f64>,
    /// Currency of `bidfloor` (ISO-4217). Default "USD".
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub bidfloorcur: Option<Str<'a>>,
    /// Browser opened on a click: 0 embedded, 1 native.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub clickbrowser: Option<i32>,
    /// 1 = the creative must use HTTPS assets.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub secure: Option<i32>,
    /// Supported iframe busters.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub iframebuster: Vec<Str<'a>>,
    /// 1 = the user receives a reward for viewing the creative.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub rwdd: Option<i32>,
    /// Server-side ad insertion: 0 unknown, 1 all client side, 2 assets stitched server side, 3 all server side.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub ssai: Option<i32>,
    /// Advisory seconds between auction and actual impression.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub exp: Option<i32>,
    /// Quantity of billable events for a DOOH or multi-viewer impression.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub qty: Option<Qty<'a>>,
    /// Timestamp (ms since epoch) when the impression is to be fulfilled.
    #[serde(default, deserialize_with = "de::unread::opt_f64", skip_serializing_if = "Option::is_none")]
    pub dt: Option<f64>,
    /// Details about ad slot refreshes.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
    /// Extensions. (2.5's `prebid.is_rewarded_inventory` here is lifted into `rwdd`, which the
    /// bidder does not use.)
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// A metric the exchange has on an impression (§3.2.5).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Metric<'a> {
    /// Type of metric ("viewability", "click_through_rate", ...).
    #[serde(rename = "type", default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Str<'a>>,
    /// Value of the metric; probabilities are 0.0–1.0.
    #[serde(default, deserialize_with = "de::opt_f64", skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Source of the value ("EXCHANGE" or a vendor domain).
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Str<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// A banner, rich-media or in-banner video impression (§3.2.6); also a video companion.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Banner<'a> {
    /// Permitted sizes; recommended.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub format: Vec<Format>,
    /// Exact width in DIPS; recommended if no `format` is given.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub w: Option<i32>,
    /// Exact height in DIPS; recommended if no `format` is given.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub h: Option<i32>,
    /// Blocked banner ad types.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub btype: Vec<BannerAdType>,
    /// Blocked creative attributes.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub battr: Vec<CreativeAttribute>,
    /// Ad position on screen.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub pos: Option<AdPosition>,
    /// Supported content MIME types.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub mimes: Vec<Str<'a>>,
    /// 1 = delivered in the top frame, 0 = in an iframe.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub topframe: Option<i32>,
    /// Directions in which the banner may expand.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub expdir: Vec<ExpandableDirection>,
    /// Supported API frameworks.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<ApiFramework>,
    /// Unique identifier for this banner when used as a companion.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Companion only: 1 = rendered at the end of the video (end card), 0 = concurrently.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub vcm: Option<i32>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// An allowed size (or flex ratio) of a banner (§3.2.10).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Format {
    /// Width in DIPS.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub w: Option<i32>,
    /// Height in DIPS.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub h: Option<i32>,
    /// Relative width when expressing size as a ratio.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub wratio: Option<i32>,
    /// Relative height when expressing size as a ratio.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub hratio: Option<i32>,
    /// Minimum width in DIPS at which the ratio applies.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub wmin: Option<i32>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// A video impression (§3.2.7).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Video<'a> {
    /// Supported content MIME types (e.g. "video/mp4"); required.
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub mimes: Vec<Str<'a>>,
    /// Minimum ad duration in seconds. Default 0.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub minduration: Option<i32>,
    /// Maximum ad duration in seconds.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub maxduration: Option<i32>,
    /// Start delay in seconds for pre-roll, mid-roll or post-roll.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub startdelay: Option<StartDelay>,
    /// Maximum number of ads in a dynamic pod.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub maxseq: Option<i32>,
    /// Total seconds of a dynamic pod.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub poddur: Option<i32>,
    /// Supported video protocols.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<Protocol>,
    /// Deprecated (2.3): a single supported protocol; use `protocols`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Width of the player in DIPS.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub w: Option<i32>,
    /// Height of the player in DIPS.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub h: Option<i32>,
    /// Identifier of the pod this impression belongs to.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub podid: Option<Str<'a>>,
    /// Sequence of the pod in the content stream. Default 0.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub podseq: Option<i32>,
    /// Exact acceptable durations in seconds.
    #[serde(default, deserialize_with = "de::unread::vec_int", skip_serializing_if = "Vec::is_empty")]
    pub rqddurs: Vec<i32>,
    /// Deprecated 2.5 placement type; see `plcmt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<VideoPlacement>,
    /// Video placement type (2.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plcmt: Option<Plcmt>,
    /// Whether the impression is linear or non-linear.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub linearity: Option<Linearity>,
    /// 1 = the player lets the viewer skip.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub skip: Option<i32>,
    /// Videos of this many seconds or longer may be skippable. Default 0.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub skipmin: Option<i32>,
    /// Seconds before skipping is enabled. Default 0.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub skipafter: Option<i32>,
    /// Deprecated: sequence number of the ad when several are offered.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i32>,
    /// For pods: the slot the impression is for (0 any, 1 first, -1 last, 2 first or last).
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub slotinpod: Option<i32>,
    /// Minimum CPM per second (used with dynamic pods).
    #[serde(default, deserialize_with = "de::unread::opt_f64", skip_serializing_if = "Option::is_none")]
    pub mincpmpersec: Option<f64>,
    /// Blocked creative attributes.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub battr: Vec<CreativeAttribute>,
    /// Maximum extended ad duration if extension is allowed.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub maxextended: Option<i32>,
    /// Minimum bit rate in Kbps.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub minbitrate: Option<i32>,
    /// Maximum bit rate in Kbps.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub maxbitrate: Option<i32>,
    /// 1 = letter-boxing of 4:3 content into 16:9 is allowed. Default 1.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub boxingallowed: Option<i32>,
    /// Playback methods that may be in use.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub playbackmethod: Vec<PlaybackMethod>,
    /// Event that causes playback to end.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub playbackend: Option<i32>,
    /// Supported delivery methods.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub delivery: Vec<DeliveryMethod>,
    /// Ad position on screen.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub pos: Option<AdPosition>,
    /// Companion ads available.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub companionad: Vec<Banner<'a>>,
    /// Supported API frameworks.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<ApiFramework>,
    /// Supported VAST companion ad types.
    #[serde(default, deserialize_with = "de::unread::vec_int", skip_serializing_if = "Vec::is_empty")]
    pub companiontype: Vec<i32>,
    /// Fields used to deduplicate ads in a pod.
    #[serde(default, deserialize_with = "de::unread::vec_int", skip_serializing_if = "Vec::is_empty")]
    pub poddedupe: Vec<i32>,
    /// Floors that vary by creative duration.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub durfloors: Vec<DurFloors>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// An audio impression (§3.2.8).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Audio<'a> {
    /// Supported content MIME types (e.g. "audio/mp4"); required.
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub mimes: Vec<Str<'a>>,
    /// Minimum ad duration in seconds. Default 0.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub minduration: Option<i32>,
    /// Maximum ad duration in seconds.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub maxduration: Option<i32>,
    /// Total seconds of a dynamic pod.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub poddur: Option<i32>,
    /// Supported audio protocols.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<Protocol>,
    /// Start delay for pre-roll, mid-roll or post-roll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startdelay: Option<StartDelay>,
    /// Exact acceptable durations in seconds.
    #[serde(default, deserialize_with = "de::vec_int", skip_serializing_if = "Vec::is_empty")]
    pub rqddurs: Vec<i32>,
    /// Identifier of the pod.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub podid: Option<Str<'a>>,
    /// Sequence of the pod in the content stream. Default 0.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub podseq: Option<i32>,
    /// Deprecated: sequence number of the ad.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i32>,
    /// For pods: the slot the impression is for.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub slotinpod: Option<i32>,
    /// Minimum CPM per second.
    #[serde(default, deserialize_with = "de::opt_f64", skip_serializing_if = "Option::is_none")]
    pub mincpmpersec: Option<f64>,
    /// Blocked creative attributes.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub battr: Vec<CreativeAttribute>,
    /// Maximum extended ad duration.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub maxextended: Option<i32>,
    /// Minimum bit rate in Kbps.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub minbitrate: Option<i32>,
    /// Maximum bit rate in Kbps.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub maxbitrate: Option<i32>,
    /// Supported delivery methods.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub delivery: Vec<DeliveryMethod>,
    /// Companion ads available.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub companionad: Vec<Banner<'a>>,
    /// Supported API frameworks.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<ApiFramework>,
    /// Supported companion ad types.
    #[serde(default, deserialize_with = "de::vec_int", skip_serializing_if = "Vec::is_empty")]
    pub companiontype: Vec<i32>,
    /// Maximum number of ads in a dynamic pod.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub maxseq: Option<i32>,
    /// Type of audio feed.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub feed: Option<i32>,
    /// 1 = the ad is stitched with the audio content.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub stitched: Option<i32>,
    /// Volume normalization mode.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub nvol: Option<i32>,
    /// Floors that vary by creative duration.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub durfloors: Vec<DurFloors>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// A native impression (§3.2.9).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Native<'a> {
    /// The Native Ad Specification request, as a JSON string; required. (Some exchanges send the object itself: it is
    /// kept as its JSON text.)
    #[serde(default, deserialize_with = "de::cow_or_json")]
    pub request: Str<'a>,
    /// Version of the Native Ad Specification; recommended.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub ver: Option<Str<'a>>,
    /// Supported API frameworks.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<ApiFramework>,
    /// Blocked creative attributes.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub battr: Vec<CreativeAttribute>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// A floor for a range of creative durations (§3.2.35).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DurFloors {
    /// Low end of the duration range, in seconds (inclusive).
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub mindur: Option<i32>,
    /// High end of the duration range, in seconds (exclusive).
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub maxdur: Option<i32>,
    /// Minimum bid for a creative in this range, CPM in the impression's `bidfloorcur`.
    #[serde(default, deserialize_with = "de::opt_f64", skip_serializing_if = "Option::is_none")]
    pub bidfloor: Option<f64>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// Private marketplace deals for an impression (§3.2.11).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Pmp<'a> {
    /// 1 = bids are restricted to the deals in `deals` under their terms; 0 = all bids accepted.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub private_auction: Option<i32>,
    /// The deals that apply to this impression.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub deals: Vec<Deal<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// A deal between a buyer and the seller (§3.2.12).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Deal<'a> {
    /// Unique ID of the deal; required.
    #[serde(default, deserialize_with = "de::cow")]
    pub id: Str<'a>,
    /// Minimum bid for this deal, CPM. Default 0.
    #[serde(default, deserialize_with = "de::opt_f64", skip_serializing_if = "Option::is_none")]
    pub bidfloor: Option<f64>,
    /// Currency of `bidfloor`. Default "USD".
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub bidfloorcur: Option<Str<'a>>,
    /// Auction type overriding the request's: 1 first price, 2 second price plus, 3 fixed deal price (in `bidfloor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<AuctionType>,
    /// Buyer seats allowed to bid on this deal; empty means any.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub wseat: Vec<Str<'a>>,
    /// Advertiser domains allowed to bid on this deal; empty means any.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub wadomain: Vec<Str<'a>>,
    /// 1 = guaranteed deal.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub guar: Option<i32>,
    /// Minimum CPM per second.
    #[serde(default, deserialize_with = "de::unread::opt_f64", skip_serializing_if = "Option::is_none")]
    pub mincpmpersec: Option<f64>,
    /// Floors that vary by creative duration.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub durfloors: Vec<DurFloors>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// Quantity of billable events (§3.2.31).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Qty<'a> {
    /// Number of billable events for one impression.
    #[serde(default, deserialize_with = "de::opt_f64", skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
    /// Source of the multiplier.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub sourcetype: Option<i32>,
    /// Vendor of the measurement.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Str<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// Slot refresh information (§3.2.33).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Refresh {
    /// How the slot refreshes.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub refsettings: Vec<RefSettings>,
    /// Number of times the slot was refreshed since the last page load.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// One refresh trigger (§3.2.34).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RefSettings {
    /// Type of refresh trigger.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub reftype: Option<i32>,
    /// Minimum seconds between refreshes.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub minint: Option<i32>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// The website on which the impression is offered (§3.2.13).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Site<'a> {
    /// Exchange-specific site ID.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Site name.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// Domain of the site (e.g. "mysite.foo.com").
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub domain: Option<Str<'a>>,
    /// Taxonomy of the category lists. Default 1.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub cattax: Option<CategoryTaxonomy>,
    /// Content categories of the site.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<Str<'a>>,
    /// Content categories of the current section.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub sectioncat: Vec<Str<'a>>,
    /// Content categories of the current page.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub pagecat: Vec<Str<'a>>,
    /// URL of the page.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub page: Option<Str<'a>>,
    /// Referrer URL (JSON `ref`).
    #[serde(
        rename = "ref",
        default,
        deserialize_with = "de::unread::opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub referrer: Option<Str<'a>>,
    /// Search string that led to the page.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub search: Option<Str<'a>>,
    /// 1 = the site is optimised for mobile.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub mobile: Option<i32>,
    /// 1 = the site has a privacy policy.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub privacypolicy: Option<i32>,
    /// The publisher of the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<Publisher<'a>>,
    /// The content in which the impression appears.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub content: Option<Box<Content<'a>>>,
    /// Comma separated keywords.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Str<'a>>,
    /// Keywords as a list.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub kwarray: Vec<Str<'a>>,
    /// Domain for inventory-sharing authorization (ads.txt `inventorypartnerdomain`).
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub inventorypartnerdomain: Option<Str<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// The app in which the impression is offered (§3.2.14).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct App<'a> {
    /// Exchange-specific app ID.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// App name.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// Store ID of the app (bundle or package name, or numeric ID on iOS).
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub bundle: Option<Str<'a>>,
    /// Domain of the app.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub domain: Option<Str<'a>>,
    /// App store URL.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub storeurl: Option<Str<'a>>,
    /// Taxonomy of the category lists. Default 1.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub cattax: Option<CategoryTaxonomy>,
    /// Content categories of the app.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<Str<'a>>,
    /// Content categories of the current section.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub sectioncat: Vec<Str<'a>>,
    /// Content categories of the current view.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub pagecat: Vec<Str<'a>>,
    /// Application version.
    #[serde(default, deserialize_with = "de::unread::opt_cow", skip_serializing_if = "Option::is_none")]
    pub ver: Option<Str<'a>>,
    /// 1 = the app has a privacy policy.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub privacypolicy: Option<i32>,
    /// 0 = free, 1 = paid app.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub paid: Option<i32>,
    /// The publisher of the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<Publisher<'a>>,
    /// The content in which the impression appears.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub content: Option<Box<Content<'a>>>,
    /// Comma separated keywords.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Str<'a>>,
    /// Keywords as a list.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub kwarray: Vec<Str<'a>>,
    /// Domain for inventory-sharing authorization.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub inventorypartnerdomain: Option<Str<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// A digital out-of-home screen (§3.2.32).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Dooh<'a> {
    /// Exchange-specific DOOH ID.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Name of the DOOH placement.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// Venue types.
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub venuetype: Vec<Str<'a>>,
    /// Venue taxonomy in use. Default 1.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub venuetypetax: Option<i32>,
    /// The publisher of the screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<Publisher<'a>>,
    /// Domain of the inventory owner.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub domain: Option<Str<'a>>,
    /// Comma separated keywords.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Str<'a>>,
    /// The content being displayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Box<Content<'a>>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// The publisher of a site, app or DOOH screen (§3.2.15).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Publisher<'a> {
    /// Exchange-specific publisher ID.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Publisher name.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// Taxonomy of `cat`. Default 1.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub cattax: Option<CategoryTaxonomy>,
    /// Content categories of the publisher.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<Str<'a>>,
    /// Highest level domain of the publisher.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub domain: Option<Str<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// The content in which an impression appears (§3.2.16).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Content<'a> {
    /// ID uniquely identifying the content.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Episode number.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub episode: Option<i32>,
    /// Content title.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub title: Option<Str<'a>>,
    /// Content series.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub series: Option<Str<'a>>,
    /// Content season.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub season: Option<Str<'a>>,
    /// Artist credited with the content.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub artist: Option<Str<'a>>,
    /// Genre.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub genre: Option<Str<'a>>,
    /// Genre taxonomy. Default 9.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub gtax: Option<i32>,
    /// Genres (taxonomy in `gtax`).
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub genres: Vec<Str<'a>>,
    /// Album.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub album: Option<Str<'a>>,
    /// International Standard Recording Code.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub isrc: Option<Str<'a>>,
    /// The producer of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<Producer<'a>>,
    /// URL of the content.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub url: Option<Str<'a>>,
    /// Taxonomy of `cat`. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cattax: Option<CategoryTaxonomy>,
    /// Content categories.
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<Str<'a>>,
    /// Production quality.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub prodq: Option<i32>,
    /// Type of content.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub context: Option<i32>,
    /// Content rating (e.g. "MPAA").
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub contentrating: Option<Str<'a>>,
    /// User rating.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub userrating: Option<Str<'a>>,
    /// Media rating per IQG guidelines.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub qagmediarating: Option<i32>,
    /// Comma separated keywords.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Str<'a>>,
    /// Keywords as a list.
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub kwarray: Vec<Str<'a>>,
    /// 1 = live content.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub livestream: Option<i32>,
    /// 1 = direct, 0 = indirect.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub sourcerelationship: Option<i32>,
    /// Length of the content in seconds.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub len: Option<i32>,
    /// Language of the content (ISO-639-1-alpha-2).
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub language: Option<Str<'a>>,
    /// Language of the content (IETF BCP 47).
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub langb: Option<Str<'a>>,
    /// 1 = embeddable.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub embeddable: Option<i32>,
    /// Additional content data.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<Data<'a>>,
    /// The network the content is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network<'a>>,
    /// The channel the content is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// The producer of content (§3.2.17).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Producer<'a> {
    /// Content producer or originator ID.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Producer name.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// Taxonomy of `cat`. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cattax: Option<CategoryTaxonomy>,
    /// Content categories of the producer.
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<Str<'a>>,
    /// Highest level domain of the producer.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub domain: Option<Str<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// The network content is distributed on (§3.2.23).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Network<'a> {
    /// Network ID.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Network name.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// Network domain.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub domain: Option<Str<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// The channel content is on (§3.2.24).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Channel<'a> {
    /// Channel ID.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Channel name.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// Channel domain.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub domain: Option<Str<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// The device through which the user interacts (§3.2.18).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Device<'a> {
    /// Location of the device (presumed to be the user's current location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo<'a>>,
    /// Do Not Track: 1 = tracking restricted.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub dnt: Option<i32>,
    /// Limit Ad Tracking: 1 = tracking must be limited per commercial guidelines.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub lmt: Option<i32>,
    /// Browser user agent string.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub ua: Option<Str<'a>>,
    /// Structured user agent (from User-Agent Client Hints).
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub sua: Option<UserAgent<'a>>,
    /// IPv4 address closest to the device.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub ip: Option<Str<'a>>,
    /// IPv6 address closest to the device.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Str<'a>>,
    /// General type of device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devicetype: Option<DeviceType>,
    /// Device make (e.g. "Apple").
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub make: Option<Str<'a>>,
    /// Device model (e.g. "iPhone").
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub model: Option<Str<'a>>,
    /// Device operating system (e.g. "iOS").
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub os: Option<Str<'a>>,
    /// Device operating system version.
    #[serde(default, deserialize_with = "de::unread::opt_cow", skip_serializing_if = "Option::is_none")]
    pub osv: Option<Str<'a>>,
    /// Hardware version of the device (e.g. "5S").
    #[serde(default, deserialize_with = "de::unread::opt_cow", skip_serializing_if = "Option::is_none")]
    pub hwv: Option<Str<'a>>,
    /// Physical screen height in pixels.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub h: Option<i32>,
    /// Physical screen width in pixels.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub w: Option<i32>,
    /// Screen size as pixels per linear inch.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub ppi: Option<i32>,
    /// Ratio of physical pixels to device-independent pixels.
    #[serde(default, deserialize_with = "de::unread::opt_f64", skip_serializing_if = "Option::is_none")]
    pub pxratio: Option<f64>,
    /// 1 = JavaScript supported.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub js: Option<i32>,
    /// 1 = the geolocation API is available to the banner.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub geofetch: Option<i32>,
    /// Flash version supported by the browser.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub flashver: Option<Str<'a>>,
    /// Browser language (ISO-639-1-alpha-2).
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub language: Option<Str<'a>>,
    /// Browser language (IETF BCP 47).
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub langb: Option<Str<'a>>,
    /// Carrier or ISP (e.g. "VERIZON").
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub carrier: Option<Str<'a>>,
    /// Mobile carrier as MCC-MNC (e.g. "310-005").
    #[serde(default, deserialize_with = "de::unread::opt_cow", skip_serializing_if = "Option::is_none")]
    pub mccmnc: Option<Str<'a>>,
    /// Network connection type.
    #[serde(default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub connectiontype: Option<ConnectionType>,
    /// Advertising ID (IDFA, AAID, ...).
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub ifa: Option<Str<'a>>,
    /// Deprecated hashed hardware device ID (SHA1).
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub didsha1: Option<Str<'a>>,
    /// Deprecated hashed hardware device ID (MD5).
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub didmd5: Option<Str<'a>>,
    /// Deprecated hashed platform device ID (SHA1).
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub dpidsha1: Option<Str<'a>>,
    /// Deprecated hashed platform device ID (MD5).
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub dpidmd5: Option<Str<'a>>,
    /// Deprecated hashed MAC address (SHA1).
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub macsha1: Option<Str<'a>>,
    /// Deprecated hashed MAC address (MD5).
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub macmd5: Option<Str<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// Structured user agent information (§3.2.29).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct UserAgent<'a> {
    /// Browser or software components, in order.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub browsers: Vec<BrandVersion<'a>>,
    /// Platform or OS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<BrandVersion<'a>>,
    /// 1 = the agent prefers "mobile" content.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub mobile: Option<i32>,
    /// Device's major binary architecture (e.g. "x86", "arm").
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Str<'a>>,
    /// Device bitness (e.g. "64").
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub bitness: Option<Str<'a>>,
    /// Device model.
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub model: Option<Str<'a>>,
    /// Source of the data: 0 unknown, 1 low-entropy client hints, 2 high-entropy client hints, 3 parsed from `ua`.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub source: Option<i32>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// A brand and its version (§3.2.30).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct BrandVersion<'a> {
    /// Brand identifier (e.g. "Chrome", "Windows").
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub brand: Option<Str<'a>>,
    /// Version components, most significant first.
    #[serde(default, deserialize_with = "de::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub version: Vec<Str<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// A geographic location (§3.2.19).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Geo<'a> {
    /// Latitude, -90.0 to 90.0 (south negative).
    #[serde(default, deserialize_with = "de::unread::opt_f64", skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    /// Longitude, -180.0 to 180.0 (west negative).
    #[serde(default, deserialize_with = "de::unread::opt_f64", skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    /// Source of the location data (JSON `type`).
    #[serde(rename = "type", default, deserialize_with = "de::unread::plain", skip_serializing_if = "Option::is_none")]
    pub kind: Option<LocationType>,
    /// Estimated accuracy in metres.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<i32>,
    /// Seconds since the geolocation fix was established.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub lastfix: Option<i32>,
    /// Service or provider used to determine the location from IP.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub ipservice: Option<i32>,
    /// Country code (ISO-3166-1-alpha-3).
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub country: Option<Str<'a>>,
    /// Region code (ISO-3166-2).
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub region: Option<Str<'a>>,
    /// Region of a country (FIPS 10-4).
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub regionfips104: Option<Str<'a>>,
    /// Google metro code.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub metro: Option<Str<'a>>,
    /// City (UN/LOCODE).
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub city: Option<Str<'a>>,
    /// ZIP or postal code.
    #[serde(default, deserialize_with = "de::unread::opt_cow", skip_serializing_if = "Option::is_none")]
    pub zip: Option<Str<'a>>,
    /// Local time as +/- minutes from UTC.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub utcoffset: Option<i32>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// The human user of the device (§3.2.20).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct User<'a> {
    /// Exchange-specific ID for the user.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Buyer-specific ID for the user as mapped by the exchange.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub buyeruid: Option<Str<'a>>,
    /// Deprecated: year of birth.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub yob: Option<i32>,
    /// Deprecated: "M", "F" or "O".
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub gender: Option<Str<'a>>,
    /// Comma separated keywords, interests or intent.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Str<'a>>,
    /// Keywords as a list.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub kwarray: Vec<Str<'a>>,
    /// Bidder data set in the exchange's cookie.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub customdata: Option<Str<'a>>,
    /// Location of the user's home base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo<'a>>,
    /// Additional user data (audience segments).
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<Data<'a>>,
    /// TCF consent string when GDPR applies (2.5: `user.ext.consent`).
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub consent: Option<Str<'a>>,
    /// Extended (third-party) identifiers (2.5: `user.ext.eids`).
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub eids: Vec<Eid<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// A data provider and its segments (§3.2.21).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Data<'a> {
    /// Exchange-specific ID for the data provider.
    #[serde(default, deserialize_with = "de::unread::opt_cow", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Exchange-specific name for the data provider.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// Client IDs.
    #[serde(default, deserialize_with = "de::unread::vec_cow", skip_serializing_if = "Vec::is_empty")]
    pub cids: Vec<Str<'a>>,
    /// Data segments.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub segment: Vec<Segment<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// A data segment (§3.2.22).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Segment<'a> {
    /// ID of the segment.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Name of the segment.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    /// Value of the segment.
    #[serde(default, deserialize_with = "de::unread::opt_cow", skip_serializing_if = "Option::is_none")]
    pub value: Option<Str<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// Extended identifiers from one source (§3.2.27).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Eid<'a> {
    /// Canonical domain of the entity that added the ID.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub inserter: Option<Str<'a>>,
    /// Canonical domain of the ID source (e.g. "liveramp.com").
    #[serde(default, deserialize_with = "de::opt_str", skip_serializing_if = "Option::is_none")]
    pub source: Option<Str<'a>>,
    /// Technology provider that matched the ID.
    #[serde(default, deserialize_with = "de::unread::opt_str", skip_serializing_if = "Option::is_none")]
    pub matcher: Option<Str<'a>>,
    /// Match method.
    #[serde(default, deserialize_with = "de::unread::opt_int", skip_serializing_if = "Option::is_none")]
    pub mm: Option<i32>,
    /// The identifiers.
    #[serde(default, deserialize_with = "de::unread::vec", skip_serializing_if = "Vec::is_empty")]
    pub uids: Vec<Uid<'a>>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::unread::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// One extended identifier (§3.2.28).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct Uid<'a> {
    /// The identifier.
    #[serde(default, deserialize_with = "de::opt_cow", skip_serializing_if = "Option::is_none")]
    pub id: Option<Str<'a>>,
    /// Type of user agent the ID is from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atype: Option<AgentType>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// An optional string that borrows nothing.
fn owned_str(s: Option<Str<'_>>) -> Option<Str<'static>> {
    s.map(|c| Cow::Owned(c.into_owned()))
}

impl Eid<'_> {
    /// The same ids, owning their strings (e.g. lifted out of an `ext` they borrowed from).
    pub fn into_owned(self) -> Eid<'static> {
        Eid {
            inserter: owned_str(self.inserter),
            source: owned_str(self.source),
            matcher: owned_str(self.matcher),
            mm: self.mm,
            uids: self.uids.into_iter().map(Uid::into_owned).collect(),
            ext: self.ext,
        }
    }
}

impl Uid<'_> {
    /// The same id, owning its strings.
    pub fn into_owned(self) -> Uid<'static> {
        Uid { id: owned_str(self.id), atype: self.atype, ext: self.ext }
    }
}

impl SupplyChain<'_> {
    /// The same chain, owning its strings.
    pub fn into_owned(self) -> SupplyChain<'static> {
        SupplyChain {
            complete: self.complete,
            nodes: self.nodes.into_iter().map(SupplyChainNode::into_owned).collect(),
            ver: owned_str(self.ver),
            ext: self.ext,
        }
    }
}

impl SupplyChainNode<'_> {
    /// The same node, owning its strings.
    pub fn into_owned(self) -> SupplyChainNode<'static> {
        SupplyChainNode {
            asi: owned_str(self.asi),
            sid: owned_str(self.sid),
            rid: owned_str(self.rid),
            name: owned_str(self.name),
            domain: owned_str(self.domain),
            hp: self.hp,
            ext: self.ext,
        }
    }
}
