//! OpenRTB 2.6 bid response objects (§4.2).
//!
//! Serialization skips `None` and empty lists, so a response carries only what was set; the
//! IAB JSON schema test (`tests/schema.rs`) checks what these produce. Deserialization is as
//! tolerant as the request side (useful for tests and load generators reading responses).

use crate::de;
use crate::enums::*;
use serde::{Deserialize, Serialize};

/// The top-level bid response (OpenRTB 2.6 §4.2.1). A no-bid is an empty `seatbid` with an optional `nbr`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BidResponse {
    /// ID of the bid request this responds to; required.
    #[serde(default, deserialize_with = "de::string")]
    pub id: String,
    /// One per bidder seat; at least one to bid.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub seatbid: Vec<SeatBid>,
    /// Bidder-generated response ID (`${AUCTION_BID_ID}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bidid: Option<String>,
    /// Bid currency (ISO-4217). Default "USD".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cur: Option<String>,
    /// Data to set in the exchange's cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customdata: Option<String>,
    /// Reason for not bidding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbr: Option<NoBidReason>,
    /// Bidder-specific extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// Bids on behalf of one buyer seat (§4.2.2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeatBid {
    /// The bids; at least one.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub bid: Vec<Bid>,
    /// ID of the buyer seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat: Option<String>,
    /// 1 = the impressions must be won or lost as a group. Default 0.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub group: Option<i32>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

/// An offer to buy one impression (§4.2.3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bid {
    /// Bidder-generated bid ID; required.
    #[serde(default, deserialize_with = "de::string")]
    pub id: String,
    /// ID of the `Imp` this bid is for; required.
    #[serde(default, deserialize_with = "de::string")]
    pub impid: String,
    /// Bid price as CPM in currency units (the response's `cur`); required. Build it from micros with
    /// `price::micros_to_price`.
    #[serde(deserialize_with = "de::f64")]
    pub price: f64,
    /// Win notice URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nurl: Option<String>,
    /// Billing notice URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burl: Option<String>,
    /// Loss notice URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lurl: Option<String>,
    /// Ad markup (or omitted when served on the win notice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adm: Option<String>,
    /// ID of a preloaded ad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adid: Option<String>,
    /// Advertiser domains for block list checking.
    #[serde(default, deserialize_with = "de::vec_string", skip_serializing_if = "Vec::is_empty")]
    pub adomain: Vec<String>,
    /// App store ID of the advertised app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// Image URL representative of the campaign, for quality checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iurl: Option<String>,
    /// Campaign ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Creative ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crid: Option<String>,
    /// Tactic ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tactic: Option<String>,
    /// Taxonomy of `cat`. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cattax: Option<CategoryTaxonomy>,
    /// Content categories of the creative.
    #[serde(default, deserialize_with = "de::vec_string", skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<String>,
    /// Attributes of the creative.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub attr: Vec<CreativeAttribute>,
    /// APIs required by the markup.
    #[serde(default, deserialize_with = "de::vec", skip_serializing_if = "Vec::is_empty")]
    pub apis: Vec<ApiFramework>,
    /// Deprecated: use `apis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiFramework>,
    /// Video response protocol of the markup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Creative media rating per IQG guidelines.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub qagmediarating: Option<i32>,
    /// Language of the creative (ISO-639-1-alpha-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Language of the creative (IETF BCP 47).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub langb: Option<String>,
    /// The `deal.id` this bid is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dealid: Option<String>,
    /// Creative width in DIPS.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub w: Option<i32>,
    /// Creative height in DIPS.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub h: Option<i32>,
    /// Relative width (flex ads).
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub wratio: Option<i32>,
    /// Relative height (flex ads).
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub hratio: Option<i32>,
    /// Seconds the bidder is willing to wait between auction and impression.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub exp: Option<i32>,
    /// Duration of the video or audio creative in seconds.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub dur: Option<i32>,
    /// Type of the markup: 1 banner, 2 video, 3 audio, 4 native.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtype: Option<MarkupType>,
    /// Pod position the bid is eligible for.
    #[serde(default, deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub slotinpod: Option<i32>,
    /// Extensions.
    #[serde(default, deserialize_with = "de::ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
}

impl BidResponse {
    /// A no-bid answer carrying a reason (for exchanges that want HTTP 200 with `nbr` rather
    /// than HTTP 204).
    pub fn no_bid(request_id: impl Into<String>, nbr: NoBidReason) -> BidResponse {
        BidResponse { id: request_id.into(), nbr: Some(nbr), ..BidResponse::default() }
    }

    /// Whether this response holds at least one bid.
    pub fn has_bids(&self) -> bool {
        self.seatbid.iter().any(|s| !s.bid.is_empty())
    }

    /// All bids of all seats.
    pub fn bids(&self) -> impl Iterator<Item = &Bid> {
        self.seatbid.iter().flat_map(|s| s.bid.iter())
    }
}
