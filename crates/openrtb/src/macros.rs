//! OpenRTB substitution macros (§4.4): `${AUCTION_PRICE}` and friends in win/billing/loss
//! notice URLs and in ad markup.
//!
//! Exchanges substitute these in what we send; [`substitute`] does the same (for tests, a
//! load generator playing exchange, or markup served on the win notice). Reading our own
//! notice URLs back is [`crate::price::parse_price_micros`]'s job.
//!
//! Rules implemented:
//!
//! - a macro is `${NAME}` or `${NAME:ENC}` where `NAME` is upper-case ASCII letters, digits and
//!   `_` (every spec macro is) and `ENC` is ASCII letters and digits;
//! - a known macro is replaced by its value, or by the empty string when the value is not
//!   available (spec: "the macro will simply be removed");
//! - an unknown upper-case macro (`${FOO}`) is replaced by the empty string;
//! - `:B64` encodes the value as base64url without padding (the spec leaves the algorithm to
//!   the parties; this is the common choice and what our notice parser reads); any other
//!   encoding suffix yields the empty string, since the value cannot be encoded as asked;
//! - anything else is left exactly as is: a `${` without a closing `}`, or braces around
//!   text that is not a macro name (`${price}`, `${ x }`, JavaScript template literals in
//!   markup).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The macros of OpenRTB 2.6 §4.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Macro {
    /// `${AUCTION_ID}`: `BidRequest.id`.
    AuctionId,
    /// `${AUCTION_BID_ID}`: `BidResponse.bidid`.
    AuctionBidId,
    /// `${AUCTION_IMP_ID}`: `imp.id` of the impression won.
    AuctionImpId,
    /// `${AUCTION_SEAT_ID}`: the bidder seat.
    AuctionSeatId,
    /// `${AUCTION_AD_ID}`: `bid.adid`.
    AuctionAdId,
    /// `${AUCTION_PRICE}`: clearing price, same currency and units as the bid.
    AuctionPrice,
    /// `${AUCTION_CURRENCY}`: the bid's currency.
    AuctionCurrency,
    /// `${AUCTION_MBR}`: market bid ratio, clearing price / bid price.
    AuctionMbr,
    /// `${AUCTION_LOSS}`: loss reason code ([`crate::LossReason`]).
    AuctionLoss,
    /// `${AUCTION_MIN_TO_WIN}`: minimum bid that would have won (or tied).
    AuctionMinToWin,
    /// `${AUCTION_MULTIPLIER}`: quantity of impressions won (DOOH).
    AuctionMultiplier,
    /// `${AUCTION_IMP_TS}`: when the impression was fulfilled, ms since the epoch.
    AuctionImpTs,
    /// `${AUCTION_DISCOUNT_PCT}`: seller discount, percent of the bid price.
    AuctionDiscountPct,
    /// `${AUCTION_DISCOUNT_CPM}`: seller discount as a CPM.
    AuctionDiscountCpm,
}

impl Macro {
    /// Every macro.
    pub const ALL: [Macro; 14] = [
        Macro::AuctionId,
        Macro::AuctionBidId,
        Macro::AuctionImpId,
        Macro::AuctionSeatId,
        Macro::AuctionAdId,
        Macro::AuctionPrice,
        Macro::AuctionCurrency,
        Macro::AuctionMbr,
        Macro::AuctionLoss,
        Macro::AuctionMinToWin,
        Macro::AuctionMultiplier,
        Macro::AuctionImpTs,
        Macro::AuctionDiscountPct,
        Macro::AuctionDiscountCpm,
    ];

    /// The macro's name without `${` `}`, e.g. `AUCTION_PRICE`.
    pub fn name(self) -> &'static str {
        match self {
            Macro::AuctionId => "AUCTION_ID",
            Macro::AuctionBidId => "AUCTION_BID_ID",
            Macro::AuctionImpId => "AUCTION_IMP_ID",
            Macro::AuctionSeatId => "AUCTION_SEAT_ID",
            Macro::AuctionAdId => "AUCTION_AD_ID",
            Macro::AuctionPrice => "AUCTION_PRICE",
            Macro::AuctionCurrency => "AUCTION_CURRENCY",
            Macro::AuctionMbr => "AUCTION_MBR",
            Macro::AuctionLoss => "AUCTION_LOSS",
            Macro::AuctionMinToWin => "AUCTION_MIN_TO_WIN",
            Macro::AuctionMultiplier => "AUCTION_MULTIPLIER",
            Macro::AuctionImpTs => "AUCTION_IMP_TS",
            Macro::AuctionDiscountPct => "AUCTION_DISCOUNT_PCT",
            Macro::AuctionDiscountCpm => "AUCTION_DISCOUNT_CPM",
        }
    }

    /// The macro as written in a template, e.g. `${AUCTION_PRICE}`.
    pub fn placeholder(self) -> String {
        format!("${{{}}}", self.name())
    }

    /// The macro with the `:B64` suffix, e.g. `${AUCTION_PRICE:B64}`.
    pub fn placeholder_b64(self) -> String {
        format!("${{{}:B64}}", self.name())
    }

    /// The macro of a name (exact, upper case).
    pub fn from_name(name: &str) -> Option<Macro> {
        Macro::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// The values to substitute; `None` becomes the empty string. Values are text, formatted by
/// the caller (prices e.g. with [`crate::price::format_price_micros`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MacroValues<'a> {
    pub auction_id: Option<&'a str>,
    pub bid_id: Option<&'a str>,
    pub imp_id: Option<&'a str>,
    pub seat_id: Option<&'a str>,
    pub ad_id: Option<&'a str>,
    pub price: Option<&'a str>,
    pub currency: Option<&'a str>,
    pub mbr: Option<&'a str>,
    pub loss: Option<&'a str>,
    pub min_to_win: Option<&'a str>,
    pub multiplier: Option<&'a str>,
    pub imp_ts: Option<&'a str>,
    pub discount_pct: Option<&'a str>,
    pub discount_cpm: Option<&'a str>,
}

impl<'a> MacroValues<'a> {
    /// The value for a macro.
    pub fn get(&self, m: Macro) -> Option<&'a str> {
        match m {
            Macro::AuctionId => self.auction_id,
            Macro::AuctionBidId => self.bid_id,
            Macro::AuctionImpId => self.imp_id,
            Macro::AuctionSeatId => self.seat_id,
            Macro::AuctionAdId => self.ad_id,
            Macro::AuctionPrice => self.price,
            Macro::AuctionCurrency => self.currency,
            Macro::AuctionMbr => self.mbr,
            Macro::AuctionLoss => self.loss,
            Macro::AuctionMinToWin => self.min_to_win,
            Macro::AuctionMultiplier => self.multiplier,
            Macro::AuctionImpTs => self.imp_ts,
            Macro::AuctionDiscountPct => self.discount_pct,
            Macro::AuctionDiscountCpm => self.discount_cpm,
        }
    }

    /// Every known macro set to `AUDIT`, the spec's placeholder for rendering markup for test
    /// or ad-quality purposes.
    pub fn audit() -> MacroValues<'static> {
        let a = Some("AUDIT");
        MacroValues {
            auction_id: a,
            bid_id: a,
            imp_id: a,
            seat_id: a,
            ad_id: a,
            price: a,
            currency: a,
            mbr: a,
            loss: a,
            min_to_win: a,
            multiplier: a,
            imp_ts: a,
            discount_pct: a,
            discount_cpm: a,
        }
    }
}

/// Replaces the macros in `template` (rules in the module docs). Never panics; runs in one
/// pass over the template.
pub fn substitute(template: &str, values: &MacroValues<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    substitute_into(template, values, &mut out);
    out
}

/// [`substitute`], appending to `out`.
pub fn substitute_into(template: &str, values: &MacroValues<'_>, out: &mut String) {
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match parse_macro(after) {
            Some((name, encoding, len)) => {
                let value = Macro::from_name(name).and_then(|m| values.get(m)).unwrap_or("");
                match encoding {
                    None => out.push_str(value),
                    Some(enc) if enc.eq_ignore_ascii_case("B64") => {
                        URL_SAFE_NO_PAD.encode_string(value.as_bytes(), out)
                    }
                    Some(_) => {}
                }
                rest = &after[len..];
            }
            None => {
                // Not a macro: keep the "$" and look again from the "{" (which cannot start
                // another "${").
                out.push('$');
                rest = &rest[start + 1..];
            }
        }
    }
    out.push_str(rest);
}

/// After `${`: `NAME(:ENC)?}` → (name, encoding, bytes consumed including `}`).
fn parse_macro(s: &str) -> Option<(&str, Option<&str>, usize)> {
    let b = s.as_bytes();
    let name_len = b.iter().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || **c == b'_').count();
    if name_len == 0 {
        return None;
    }
    match b.get(name_len) {
        Some(b'}') => Some((&s[..name_len], None, name_len + 1)),
        Some(b':') => {
            let enc = &b[name_len + 1..];
            let enc_len = enc.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
            if enc_len == 0 || enc.get(enc_len) != Some(&b'}') {
                return None;
            }
            Some((&s[..name_len], Some(&s[name_len + 1..name_len + 1 + enc_len]), name_len + enc_len + 2))
        }
        _ => None,
    }
}
