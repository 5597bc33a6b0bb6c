//! scenario: the traffic model read from a TOML file — who asks for ads (Zipf-distributed
//! users with their segments), from where (geo, device, page or app), for which placements
//! (decide) or imps (OpenRTB, see [`crate::openrtb`]), and how the "browser" or the exchange
//! follows what it gets (impressions and clicks of served ads; win, billing and loss notices of
//! bids). Pure data and sampling: no I/O beyond reading the file, never awaits.
//!
//! # Schema
//!
//! ```toml
//! name = "direct-web"                 # optional, shown in the report
//! description = "..."                 # optional
//!
//! [target]
//! kind = "decide"                     # `decide` (POST JSON) or `openrtb` (POST OpenRTB 2.6 bid requests)
//! path = "/v1/decide"                 # default: /v1/decide, or /openrtb2/bid for openrtb
//!
//! [users]
//! count = 100000                      # distinct user ids u1..uN
//! zipf_exponent = 1.0                 # rank skew: user k is drawn with weight 1/k^s (s >= 0)
//! anonymous_share = 0.05              # share of requests without a user id (default 0)
//!
//! [geo.countries]                     # country code -> weight (omit: no geo sent)
//! US = 50
//! DE = 20
//!
//! [device.types]                      # phone|tablet|desktop|connected_tv|set_top_box|connected_device|ooh -> weight
//! phone = 60
//! desktop = 40
//! [device.os]                         # optional: os -> weight
//! [device.languages]                  # optional: language -> weight
//! [device.user_agents]                # optional: device type -> User-Agent strings (one is picked)
//! phone = ["Mozilla/5.0 (iPhone; ...)"]
//!
//! [[pages]]                           # pages and/or apps; at least one of either
//! url = "https://demo-news.example/politics/a-story"
//! weight = 3                          # default 1
//! placements = ["demo-mrec", "demo-leaderboard"]          # placement ids
//! adhoc_placements = [{ sizes = ["300x250"], formats = ["banner"] }]  # placements by size
//! # openrtb: imps = ["mrec", "leaderboard"]   # imp templates from [openrtb.imps] instead of placements
//! # openrtb: cat = ["IAB12"]                   # site.cat
//!
//! [[apps]]
//! bundle = "com.example.news"
//! placements = ["demo-mrec"]
//! # openrtb: imps = [...], cat = [...], name = "Example News" (app.name; default the bundle)
//!
//! [[key_values]]                      # each request carries this key with probability `share`
//! key = "section"
//! values = ["news", "sport"]
//! share = 1.0
//!
//! [segments]                          # each user owns a stable random subset of the pool
//! pool = ["sports-fans", "initech-visitors"]
//! per_user_min = 0
//! per_user_max = 2
//!
//! [callbacks]                         # how served ads are followed
//! impression_rate = 0.9               # share of filled ads whose impression URL is fetched
//! click_rate = 0.02                   # share of fetched impressions that are then clicked
//! impression_delay_ms = { min = 20, max = 200 }   # after the decide response
//! click_delay_ms = { min = 200, max = 2000 }      # after the impression
//! # openrtb: how the exchange follows each bid it gets
//! win_rate = 0.3                      # share of bids that win the exchange's auction
//! win_notice_rate = 1.0               # share of won bids whose nurl is fetched (default 1)
//! billing_rate = 0.9                  # share of won bids whose burl is fetched (the ad rendered)
//! loss_notice_rate = 0.8              # share of lost bids whose lurl is fetched (${AUCTION_LOSS} = 102)
//! clearing_price_ratio = 0.8          # ${AUCTION_PRICE} of a win: bid price x this, in cents (default 1)
//! loss_price_ratio = 1.1              # ${AUCTION_PRICE} of a loss: the winner's price, bid x this (default 1.1)
//! win_delay_ms = { min = 10, max = 150 }       # after the bid response
//! billing_delay_ms = { min = 100, max = 1000 } # after the win
//! loss_delay_ms = { min = 20, max = 300 }      # after the bid response
//! ```
//!
//! With `kind = "openrtb"` the `[openrtb]` table holds the imp templates and auction settings:
//! see [`crate::openrtb`].

use crate::openrtb::{BidRequestSampler, OpenRtbSpec};
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::Zipf;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Most placements one request may ask for (the server's default `serving.max_placements`).
pub const MAX_PLACEMENTS: usize = 16;

/// Device types as targeting names them.
pub const DEVICE_TYPES: &[&str] =
    &["phone", "tablet", "desktop", "connected_tv", "set_top_box", "connected_device", "ooh"];

/// Why a scenario cannot be used; always names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("scenario is not valid TOML: {0}")]
    Syntax(String),
    #[error("scenario key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid { key: key.into(), message: message.into() }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub target: TargetSpec,
    pub users: UsersSpec,
    #[serde(default)]
    pub geo: GeoSpec,
    #[serde(default)]
    pub device: DeviceSpec,
    #[serde(default)]
    pub pages: Vec<PageSpec>,
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    #[serde(default)]
    pub key_values: Vec<KeyValueSpec>,
    #[serde(default)]
    pub segments: SegmentsSpec,
    #[serde(default)]
    pub callbacks: CallbacksSpec,
    /// Imp templates and auction settings of the `openrtb` target.
    #[serde(default)]
    pub openrtb: Option<OpenRtbSpec>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// `POST /v1/decide` with a JSON decision request.
    #[default]
    Decide,
    /// `POST /openrtb2/bid` with an OpenRTB 2.6 bid request.
    Openrtb,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Decide => "decide",
            TargetKind::Openrtb => "openrtb",
        }
    }

    fn default_path(self) -> &'static str {
        match self {
            TargetKind::Decide => "/v1/decide",
            TargetKind::Openrtb => "/openrtb2/bid",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    #[serde(default)]
    pub kind: TargetKind,
    /// Filled in from the kind when left out.
    #[serde(default)]
    pub path: String,
}

impl Default for TargetSpec {
    fn default() -> Self {
        TargetSpec { kind: TargetKind::Decide, path: TargetKind::Decide.default_path().into() }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersSpec {
    pub count: u64,
    pub zipf_exponent: f64,
    #[serde(default)]
    pub anonymous_share: f64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoSpec {
    #[serde(default)]
    pub countries: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    #[serde(default)]
    pub types: BTreeMap<String, f64>,
    #[serde(default)]
    pub os: BTreeMap<String, f64>,
    #[serde(default)]
    pub languages: BTreeMap<String, f64>,
    #[serde(default)]
    pub user_agents: BTreeMap<String, Vec<String>>,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageSpec {
    pub url: String,
    #[serde(default = "one")]
    pub weight: f64,
    #[serde(default)]
    pub placements: Vec<String>,
    #[serde(default)]
    pub adhoc_placements: Vec<AdhocPlacement>,
    /// Imp templates (openrtb target).
    #[serde(default)]
    pub imps: Vec<String>,
    /// IAB content categories (openrtb `site.cat`).
    #[serde(default)]
    pub cat: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    pub bundle: String,
    #[serde(default = "one")]
    pub weight: f64,
    #[serde(default)]
    pub placements: Vec<String>,
    #[serde(default)]
    pub adhoc_placements: Vec<AdhocPlacement>,
    /// Imp templates (openrtb target).
    #[serde(default)]
    pub imps: Vec<String>,
    /// IAB content categories (openrtb `app.cat`).
    #[serde(default)]
    pub cat: Vec<String>,
    /// The app's name (openrtb `app.name`; default the bundle).
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdhocPlacement {
    pub sizes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValueSpec {
    pub key: String,
    pub values: Vec<String>,
    #[serde(default = "one")]
    pub share: f64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentsSpec {
    #[serde(default)]
    pub pool: Vec<String>,
    #[serde(default)]
    pub per_user_min: usize,
    #[serde(default)]
    pub per_user_max: usize,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DelaySpec {
    pub min: u64,
    pub max: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbacksSpec {
    #[serde(default)]
    pub impression_rate: f64,
    #[serde(default)]
    pub click_rate: f64,
    #[serde(default)]
    pub impression_delay_ms: DelaySpec,
    #[serde(default)]
    pub click_delay_ms: DelaySpec,
    /// Share of bids that win the exchange's auction (openrtb).
    #[serde(default)]
    pub win_rate: f64,
    /// Share of won bids whose win notice (nurl) is fetched.
    #[serde(default = "one")]
    pub win_notice_rate: f64,
    /// Share of won bids whose billing notice (burl) is fetched.
    #[serde(default)]
    pub billing_rate: f64,
    /// Share of lost bids whose loss notice (lurl) is fetched.
    #[serde(default)]
    pub loss_notice_rate: f64,
    /// The clearing price of a win: the bid price times this.
    #[serde(default = "one")]
    pub clearing_price_ratio: f64,
    /// The price reported with a loss (the winner's): the bid price times this.
    #[serde(default = "default_loss_price_ratio")]
    pub loss_price_ratio: f64,
    #[serde(default)]
    pub win_delay_ms: DelaySpec,
    #[serde(default)]
    pub billing_delay_ms: DelaySpec,
    #[serde(default)]
    pub loss_delay_ms: DelaySpec,
}

fn default_loss_price_ratio() -> f64 {
    1.1
}

impl Default for CallbacksSpec {
    fn default() -> Self {
        CallbacksSpec {
            impression_rate: 0.0,
            click_rate: 0.0,
            impression_delay_ms: DelaySpec::default(),
            click_delay_ms: DelaySpec::default(),
            win_rate: 0.0,
            win_notice_rate: 1.0,
            billing_rate: 0.0,
            loss_notice_rate: 0.0,
            clearing_price_ratio: 1.0,
            loss_price_ratio: default_loss_price_ratio(),
            win_delay_ms: DelaySpec::default(),
            billing_delay_ms: DelaySpec::default(),
            loss_delay_ms: DelaySpec::default(),
        }
    }
}

impl CallbacksSpec {
    /// The longest a callback chain waits in all (for the end of a run).
    pub fn max_delay(&self) -> std::time::Duration {
        let ms = (self.impression_delay_ms.max + self.click_delay_ms.max)
            .max(self.win_delay_ms.max + self.billing_delay_ms.max)
            .max(self.loss_delay_ms.max);
        std::time::Duration::from_millis(ms)
    }
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
        Scenario::parse(&text)
    }

    /// Parses and validates scenario text.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ScenarioError::Syntax(e.message().to_string()))?;
        let mut scenario: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let message = e.inner().message().to_string();
            if key == "." || key.is_empty() {
                // A missing top-level table or an unknown top-level key: the message names it.
                invalid("(top level)", message)
            } else {
                invalid(key, message)
            }
        })?;
        if scenario.target.path.is_empty() {
            scenario.target.path = scenario.target.kind.default_path().into();
        }
        scenario.validate()?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        if !self.target.path.starts_with('/') {
            return Err(invalid("target.path", "a path starting with `/`, e.g. /v1/decide"));
        }
        let openrtb = self.target.kind == TargetKind::Openrtb;
        match &self.openrtb {
            Some(o) if openrtb => o.validate()?,
            Some(_) => return Err(invalid("openrtb", "only for `[target] kind = \"openrtb\"`")),
            None if openrtb => {
                return Err(invalid("openrtb", "the [openrtb] table with imp templates (target.kind is openrtb)"))
            }
            None => {}
        }
        if self.users.count == 0 {
            return Err(invalid("users.count", "at least 1 user"));
        }
        if !(self.users.zipf_exponent.is_finite() && self.users.zipf_exponent >= 0.0) {
            return Err(invalid("users.zipf_exponent", "a finite number >= 0 (0 is uniform)"));
        }
        share("users.anonymous_share", self.users.anonymous_share)?;
        weights("geo.countries", &self.geo.countries)?;
        for c in self.geo.countries.keys() {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(format!("geo.countries.{c}"), "an ISO 3166-1 alpha-2 code in capitals, e.g. US"));
            }
            // Bid requests carry alpha-3 codes: the code must be a known one.
            if openrtb && isocountry::CountryCode::for_alpha2(c).is_err() {
                return Err(invalid(format!("geo.countries.{c}"), "a known ISO 3166-1 alpha-2 code"));
            }
        }
        weights("device.types", &self.device.types)?;
        for t in self.device.types.keys() {
            if !DEVICE_TYPES.contains(&t.as_str()) {
                return Err(invalid(
                    format!("device.types.{t}"),
                    format!("a device type: {}", DEVICE_TYPES.join(", ")),
                ));
            }
        }
        weights("device.os", &self.device.os)?;
        weights("device.languages", &self.device.languages)?;
        for (t, uas) in &self.device.user_agents {
            if !DEVICE_TYPES.contains(&t.as_str()) {
                return Err(invalid(
                    format!("device.user_agents.{t}"),
                    format!("a device type: {}", DEVICE_TYPES.join(", ")),
                ));
            }
            if uas.is_empty() {
                return Err(invalid(format!("device.user_agents.{t}"), "at least one User-Agent"));
            }
        }
        if self.pages.is_empty() && self.apps.is_empty() {
            return Err(invalid("pages", "at least one page (or app) to request ads for"));
        }
        for (i, p) in self.pages.iter().enumerate() {
            let key = format!("pages[{i}]");
            if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
                return Err(invalid(format!("{key}.url"), "an http(s) URL"));
            }
            self.inventory(&key, p.weight, &p.placements, &p.adhoc_placements, &p.imps)?;
        }
        for (i, a) in self.apps.iter().enumerate() {
            let key = format!("apps[{i}]");
            if a.bundle.trim().is_empty() {
                return Err(invalid(format!("{key}.bundle"), "an app bundle id, e.g. com.example.news"));
            }
            self.inventory(&key, a.weight, &a.placements, &a.adhoc_placements, &a.imps)?;
        }
        if self.pages.iter().map(|p| p.weight).chain(self.apps.iter().map(|a| a.weight)).sum::<f64>() <= 0.0 {
            return Err(invalid("pages", "the weights of pages and apps add up to 0"));
        }
        for (i, kv) in self.key_values.iter().enumerate() {
            if kv.key.is_empty() {
                return Err(invalid(format!("key_values[{i}].key"), "a non-empty key"));
            }
            if kv.values.is_empty() {
                return Err(invalid(format!("key_values[{i}].values"), "at least one value"));
            }
            share(&format!("key_values[{i}].share"), kv.share)?;
        }
        let s = &self.segments;
        if s.per_user_min > s.per_user_max {
            return Err(invalid("segments.per_user_min", "at most segments.per_user_max"));
        }
        if s.per_user_max > s.pool.len() {
            return Err(invalid("segments.per_user_max", format!("at most the pool's size ({})", s.pool.len())));
        }
        let c = &self.callbacks;
        for (key, v, for_bids) in [
            ("impression_rate", c.impression_rate, false),
            ("click_rate", c.click_rate, false),
            ("win_rate", c.win_rate, true),
            ("win_notice_rate", c.win_notice_rate, true),
            ("billing_rate", c.billing_rate, true),
            ("loss_notice_rate", c.loss_notice_rate, true),
        ] {
            share(&format!("callbacks.{key}"), v)?;
            // A notice rate of 1 is the default; only a rate that would send something counts.
            if for_bids != openrtb && v > 0.0 && key != "win_notice_rate" {
                let what = if for_bids {
                    "bids are followed only with `[target] kind = \"openrtb\"`"
                } else {
                    "served ads are followed only with `[target] kind = \"decide\"`"
                };
                return Err(invalid(format!("callbacks.{key}"), what));
            }
        }
        for (key, v) in [("clearing_price_ratio", c.clearing_price_ratio), ("loss_price_ratio", c.loss_price_ratio)] {
            if !(v.is_finite() && v > 0.0 && v <= 100.0) {
                return Err(invalid(format!("callbacks.{key}"), format!("a ratio above 0 and at most 100, not {v}")));
            }
        }
        for (key, d) in [
            ("callbacks.impression_delay_ms", c.impression_delay_ms),
            ("callbacks.click_delay_ms", c.click_delay_ms),
            ("callbacks.win_delay_ms", c.win_delay_ms),
            ("callbacks.billing_delay_ms", c.billing_delay_ms),
            ("callbacks.loss_delay_ms", c.loss_delay_ms),
        ] {
            if d.min > d.max {
                return Err(invalid(format!("{key}.min"), "at most max"));
            }
            if d.max > 600_000 {
                return Err(invalid(format!("{key}.max"), "at most 600000 ms"));
            }
        }
        Ok(())
    }
}

pub(crate) fn share(key: &str, v: f64) -> Result<(), ScenarioError> {
    if !(0.0..=1.0).contains(&v) {
        return Err(invalid(key, format!("a share between 0 and 1, not {v}")));
    }
    Ok(())
}

fn weights(key: &str, w: &BTreeMap<String, f64>) -> Result<(), ScenarioError> {
    for (k, v) in w {
        if !(v.is_finite() && *v >= 0.0) {
            return Err(invalid(format!("{key}.{k}"), format!("a weight >= 0, not {v}")));
        }
    }
    if !w.is_empty() && w.values().sum::<f64>() <= 0.0 {
        return Err(invalid(key, "the weights add up to 0"));
    }
    Ok(())
}

impl Scenario {
    /// Checks a page's or app's weight and what it asks for: placements (decide) or imps (openrtb).
    fn inventory(
        &self,
        key: &str,
        weight: f64,
        ids: &[String],
        adhoc: &[AdhocPlacement],
        imps: &[String],
    ) -> Result<(), ScenarioError> {
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(invalid(format!("{key}.weight"), format!("a weight >= 0, not {weight}")));
        }
        let Some(openrtb) = self.openrtb.as_ref().filter(|_| self.target.kind == TargetKind::Openrtb) else {
            if !imps.is_empty() {
                return Err(invalid(
                    format!("{key}.imps"),
                    "imps are for `[target] kind = \"openrtb\"`; decide asks for placements",
                ));
            }
            return placements(key, ids, adhoc);
        };
        if !ids.is_empty() || !adhoc.is_empty() {
            let field = if ids.is_empty() { "adhoc_placements" } else { "placements" };
            return Err(invalid(
                format!("{key}.{field}"),
                "placements are for the decide target; an OpenRTB page or app lists `imps`",
            ));
        }
        if imps.is_empty() || imps.len() > crate::openrtb::MAX_IMPS {
            return Err(invalid(
                format!("{key}.imps"),
                format!("1 to {} imp templates from [openrtb.imps]", crate::openrtb::MAX_IMPS),
            ));
        }
        for (j, name) in imps.iter().enumerate() {
            if !openrtb.imps.contains_key(name) {
                let known: Vec<&str> = openrtb.imps.keys().map(String::as_str).collect();
                return Err(invalid(format!("{key}.imps[{j}]"), format!("an imp template: {}", known.join(", "))));
            }
        }
        Ok(())
    }
}

fn placements(key: &str, ids: &[String], adhoc: &[AdhocPlacement]) -> Result<(), ScenarioError> {
    let n = ids.len() + adhoc.len();
    if n == 0 || n > MAX_PLACEMENTS {
        return Err(invalid(
            format!("{key}.placements"),
            format!("1 to {MAX_PLACEMENTS} placements (ids in `placements`, sizes in `adhoc_placements`)"),
        ));
    }
    for (j, id) in ids.iter().enumerate() {
        if id.trim().is_empty() {
            return Err(invalid(format!("{key}.placements[{j}]"), "a placement id"));
        }
    }
    for (j, a) in adhoc.iter().enumerate() {
        if a.sizes.is_empty() {
            return Err(invalid(format!("{key}.adhoc_placements[{j}].sizes"), "at least one size, e.g. 300x250"));
        }
        for (k, s) in a.sizes.iter().enumerate() {
            let ok = s.split_once('x').is_some_and(|(w, h)| w.parse::<u32>().is_ok() && h.parse::<u32>().is_ok());
            if !ok {
                return Err(invalid(format!("{key}.adhoc_placements[{j}].sizes[{k}]"), "WIDTHxHEIGHT, e.g. 300x250"));
            }
        }
        for (k, f) in a.formats.iter().enumerate() {
            if !["banner", "video", "native"].contains(&f.as_str()) {
                return Err(invalid(format!("{key}.adhoc_placements[{j}].formats[{k}]"), "banner, video or native"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// sampling

/// A weighted choice among named values.
#[derive(Clone, Debug)]
pub struct Weighted<T> {
    items: Vec<T>,
    index: WeightedIndex<f64>,
}

impl<T: Clone> Weighted<T> {
    /// None when `pairs` is empty (the attribute is then not sent).
    pub fn new(pairs: impl IntoIterator<Item = (T, f64)>) -> Option<Weighted<T>> {
        let (items, w): (Vec<T>, Vec<f64>) = pairs.into_iter().unzip();
        let index = WeightedIndex::new(&w).ok()?;
        Some(Weighted { items, index })
    }

    pub fn sample<'a, R: Rng + ?Sized>(&'a self, rng: &mut R) -> &'a T {
        &self.items[self.index.sample(rng)]
    }
}

fn weighted_names(m: &BTreeMap<String, f64>) -> Option<Weighted<String>> {
    Weighted::new(m.iter().map(|(k, v)| (k.clone(), *v)))
}

/// Zipf-distributed user ranks 1..=count.
#[derive(Clone, Debug)]
pub struct UserSampler {
    zipf: Zipf<f64>,
}

impl UserSampler {
    pub fn new(count: u64, exponent: f64) -> Option<UserSampler> {
        Zipf::new(count as f64, exponent).ok().map(|zipf| UserSampler { zipf })
    }

    /// A user rank, 1 being the most active user.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        self.zipf.sample(rng) as u64
    }
}

/// One kind of inventory a request comes from.
#[derive(Clone, Debug)]
enum Site {
    Page(String),
    App(String),
}

#[derive(Clone, Debug)]
struct Inventory {
    site: Site,
    placements: Vec<PlacementBody>,
}

/// Builds decide request bodies from a scenario. Cheap to clone: one per load thread.
#[derive(Clone, Debug)]
pub struct RequestSampler {
    users: UserSampler,
    anonymous_share: f64,
    countries: Option<Weighted<String>>,
    device_types: Option<Weighted<String>>,
    os: Option<Weighted<String>>,
    languages: Option<Weighted<String>>,
    user_agents: BTreeMap<String, Vec<String>>,
    inventory: Weighted<Inventory>,
    key_values: Vec<KeyValueSpec>,
    segments: SegmentsSpec,
}

#[derive(Serialize, Debug)]
struct DecideBody<'a> {
    placements: &'a [PlacementBody],
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<PageBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<AppBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<DeviceBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    geo: Option<GeoBody<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    key_values: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize, Debug, Clone)]
struct PlacementBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sizes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    formats: Vec<String>,
}

#[derive(Serialize, Debug)]
struct UserBody<'a> {
    id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    segments: Vec<&'a str>,
}

#[derive(Serialize, Debug)]
struct PageBody<'a> {
    url: &'a str,
}

#[derive(Serialize, Debug)]
struct AppBody<'a> {
    bundle: &'a str,
}

#[derive(Serialize, Debug)]
struct DeviceBody<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    device_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    os: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ua: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
}

#[derive(Serialize, Debug)]
struct GeoBody<'a> {
    country: &'a str,
}

/// One request to send: its body and how many placements (decide) or imps (openrtb) it asks for.
#[derive(Debug)]
pub struct SampledRequest {
    pub body: Vec<u8>,
    pub placements: usize,
    /// The body is gzip-compressed (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// The bid request's `tmax` (openrtb).
    pub tmax_ms: Option<u64>,
}

/// The segments (indices into the pool) user `rank` belongs to: the same on every request.
pub(crate) fn user_segment_indices(s: &SegmentsSpec, rank: u64) -> Vec<usize> {
    if s.per_user_max == 0 || s.pool.is_empty() {
        return Vec::new();
    }
    let mut rng = SmallRng::seed_from_u64(rank.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let n = rng.random_range(s.per_user_min..=s.per_user_max);
    rand::seq::index::sample(&mut rng, s.pool.len(), n).into_vec()
}

/// What a scenario sends: decide requests or bid requests. Cheap to clone: one per load thread.
#[derive(Clone, Debug)]
pub enum Traffic {
    Decide(Box<RequestSampler>),
    OpenRtb(Box<BidRequestSampler>),
}

impl Traffic {
    pub fn new(s: &Scenario) -> Result<Traffic, ScenarioError> {
        Ok(match s.target.kind {
            TargetKind::Decide => Traffic::Decide(Box::new(RequestSampler::new(s)?)),
            TargetKind::Openrtb => Traffic::OpenRtb(Box::new(BidRequestSampler::new(s)?)),
        })
    }

    /// Draws one request.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> SampledRequest {
        match self {
            Traffic::Decide(s) => s.sample(rng),
            Traffic::OpenRtb(s) => {
                let r = s.sample(rng);
                SampledRequest { body: r.body, placements: r.imps, gzip: r.gzip, tmax_ms: Some(r.tmax_ms) }
            }
        }
    }
}

impl RequestSampler {
    pub fn new(s: &Scenario) -> Result<RequestSampler, ScenarioError> {
        let users = UserSampler::new(s.users.count, s.users.zipf_exponent)
            .ok_or_else(|| invalid("users.zipf_exponent", "not a usable Zipf distribution"))?;
        let bodies = |ids: &[String], adhoc: &[AdhocPlacement]| -> Vec<PlacementBody> {
            ids.iter()
                .map(|id| PlacementBody { id: Some(id.clone()), sizes: vec![], formats: vec![] })
                .chain(adhoc.iter().map(|a| PlacementBody {
                    id: None,
                    sizes: a.sizes.clone(),
                    formats: a.formats.clone(),
                }))
                .collect()
        };
        let pages = s.pages.iter().map(|p| {
            (
                Inventory { site: Site::Page(p.url.clone()), placements: bodies(&p.placements, &p.adhoc_placements) },
                p.weight,
            )
        });
        let apps = s.apps.iter().map(|a| {
            (
                Inventory { site: Site::App(a.bundle.clone()), placements: bodies(&a.placements, &a.adhoc_placements) },
                a.weight,
            )
        });
        let inventory = Weighted::new(pages.chain(apps))
            .ok_or_else(|| invalid("pages", "the weights of pages and apps add up to 0"))?;
        Ok(RequestSampler {
            users,
            anonymous_share: s.users.anonymous_share,
            countries: weighted_names(&s.geo.countries),
            device_types: weighted_names(&s.device.types),
            os: weighted_names(&s.device.os),
            languages: weighted_names(&s.device.languages),
            user_agents: s.device.user_agents.clone(),
            inventory,
            key_values: s.key_values.clone(),
            segments: s.segments.clone(),
        })
    }

    /// The segments user `rank` belongs to: the same on every request of that user.
    fn user_segments(&self, rank: u64) -> Vec<&str> {
        user_segment_indices(&self.segments, rank).into_iter().map(|i| self.segments.pool[i].as_str()).collect()
    }

    /// Draws one decide request.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> SampledRequest {
        let inv = self.inventory.sample(rng);
        let user = (self.anonymous_share == 0.0 || !rng.random_bool(self.anonymous_share)).then(|| {
            let rank = self.users.sample(rng);
            UserBody { id: format!("u{rank}"), segments: self.user_segments(rank) }
        });
        let device_type = self.device_types.as_ref().map(|w| w.sample(rng).as_str());
        let ua = device_type
            .and_then(|t| self.user_agents.get(t))
            .filter(|uas| !uas.is_empty())
            .map(|uas| uas[rng.random_range(0..uas.len())].as_str());
        let os = self.os.as_ref().map(|w| w.sample(rng).as_str());
        let language = self.languages.as_ref().map(|w| w.sample(rng).as_str());
        let device = (device_type.is_some() || os.is_some() || ua.is_some() || language.is_some())
            .then_some(DeviceBody { device_type, os, ua, language });
        let geo = self.countries.as_ref().map(|w| GeoBody { country: w.sample(rng).as_str() });
        let mut key_values = BTreeMap::new();
        for kv in &self.key_values {
            if kv.share >= 1.0 || rng.random_bool(kv.share) {
                key_values.insert(kv.key.as_str(), kv.values[rng.random_range(0..kv.values.len())].as_str());
            }
        }
        let (page, app) = match &inv.site {
            Site::Page(url) => (Some(PageBody { url }), None),
            Site::App(bundle) => (None, Some(AppBody { bundle })),
        };
        let body = DecideBody { placements: &inv.placements, user, page, app, device, geo, key_values };
        // Serialising plain strings and maps into a Vec cannot fail.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        SampledRequest { body, placements: inv.placements.len(), gzip: false, tmax_ms: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        name = "t"
        [users]
        count = 1000
        zipf_exponent = 1.1
        [geo.countries]
        US = 3
        DE = 1
        [device.types]
        phone = 1
        [device.user_agents]
        phone = ["Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"]
        [[pages]]
        url = "https://demo-news.example/a"
        placements = ["demo-mrec", "demo-leaderboard"]
        adhoc_placements = [{ sizes = ["300x250"] }]
        [[key_values]]
        key = "section"
        values = ["news"]
        [segments]
        pool = ["a", "b", "c"]
        per_user_min = 1
        per_user_max = 2
        [callbacks]
        impression_rate = 0.9
        click_rate = 0.1
        impression_delay_ms = { min = 1, max = 5 }
    "#;

    fn err_key(text: &str) -> String {
        match Scenario::parse(text) {
            Err(ScenarioError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid-key error, got {other:?}"),
        }
    }

    #[test]
    fn a_good_scenario_parses() {
        let s = Scenario::parse(GOOD).expect("valid");
        assert_eq!(s.users.count, 1000);
        assert_eq!(s.target.path, "/v1/decide");
        assert_eq!(s.callbacks.impression_delay_ms, DelaySpec { min: 1, max: 5 });
        assert_eq!(s.pages[0].placements.len() + s.pages[0].adhoc_placements.len(), 3);
    }

    #[test]
    fn bad_scenarios_name_the_key() {
        assert_eq!(err_key(&GOOD.replace("zipf_exponent = 1.1", "zipf_exponent = -1.0")), "users.zipf_exponent");
        assert_eq!(err_key(&GOOD.replace("zipf_exponent = 1.1", "zipf_exponent = \"high\"")), "users.zipf_exponent");
        assert_eq!(err_key(&GOOD.replace("count = 1000", "count = 0")), "users.count");
        assert_eq!(err_key(&GOOD.replace("US = 3", "usa = 3")), "geo.countries.usa");
        assert_eq!(
            err_key(&GOOD.replace("[device.types]\n        phone", "[device.types]\n        fridge")),
            "device.types.fridge"
        );
        assert_eq!(err_key(&GOOD.replace("click_rate = 0.1", "click_rate = 1.5")), "callbacks.click_rate");
        assert_eq!(err_key(&GOOD.replace("click_rate = 0.1", "clik_rate = 0.1")), "callbacks.clik_rate");
        assert_eq!(err_key(&GOOD.replace("min = 1, max = 5", "min = 9, max = 5")), "callbacks.impression_delay_ms.min");
        assert_eq!(err_key(&GOOD.replace("\"300x250\"", "\"big\"")), "pages[0].adhoc_placements[0].sizes[0]");
        assert_eq!(err_key(&GOOD.replace("per_user_max = 2", "per_user_max = 7")), "segments.per_user_max");
        assert_eq!(
            err_key(&GOOD.replace("placements = [\"demo-mrec\", \"demo-leaderboard\"]\n        adhoc_placements = [{ sizes = [\"300x250\"] }]", "")),
            "pages[0].placements"
        );
        // A missing required table is named too.
        let no_users = GOOD.replace("[users]\n        count = 1000\n        zipf_exponent = 1.1\n", "");
        match Scenario::parse(&no_users) {
            Err(e) => assert!(e.to_string().contains("users"), "{e}"),
            Ok(_) => panic!("a scenario without users was accepted"),
        }
        assert!(matches!(Scenario::parse("users = ["), Err(ScenarioError::Syntax(_))));
    }

    #[test]
    fn the_bundled_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("bench/scenarios") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let traffic = Traffic::new(&s).expect("sampler");
                let mut rng = SmallRng::seed_from_u64(1);
                assert!(!traffic.sample(&mut rng).body.is_empty());
                n += 1;
            }
        }
        assert!(n >= 5, "expected the bundled scenarios in {}", dir.display());
    }

    #[test]
    fn zipf_users_follow_the_exponent() {
        // s = 1 over 10 users: P(rank k) = (1/k) / H_10, H_10 = 2.928968...
        let users = UserSampler::new(10, 1.0).expect("zipf");
        let mut rng = SmallRng::seed_from_u64(7);
        let n = 200_000;
        let mut counts = [0u64; 11];
        for _ in 0..n {
            let r = users.sample(&mut rng);
            assert!((1..=10).contains(&r), "rank {r} out of range");
            counts[r as usize] += 1;
        }
        let h10 = (1..=10).map(|k| 1.0 / k as f64).sum::<f64>();
        for k in [1usize, 2, 5, 10] {
            let got = counts[k] as f64 / n as f64;
            let want = (1.0 / k as f64) / h10;
            assert!((got - want).abs() < 0.01, "rank {k}: share {got:.4}, expected {want:.4}");
        }
        // s = 0 is uniform.
        let flat = UserSampler::new(4, 0.0).expect("zipf");
        let mut c = [0u64; 5];
        for _ in 0..n {
            c[flat.sample(&mut rng) as usize] += 1;
        }
        for (k, count) in c.iter().enumerate().skip(1) {
            let got = *count as f64 / n as f64;
            assert!((got - 0.25).abs() < 0.01, "uniform rank {k}: {got:.4}");
        }
    }

    #[test]
    fn weights_are_sampled_in_proportion() {
        let w = Weighted::new([("US", 3.0), ("DE", 1.0), ("FR", 0.0)]).expect("weights");
        let mut rng = SmallRng::seed_from_u64(1);
        let n = 100_000;
        let mut us = 0;
        for _ in 0..n {
            match *w.sample(&mut rng) {
                "US" => us += 1,
                "DE" => {}
                other => panic!("a zero-weight item was drawn: {other}"),
            }
        }
        let share = us as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.01, "US share {share:.4}, expected 0.75");
        assert!(Weighted::<&str>::new([]).is_none());
    }

    #[test]
    fn sampled_requests_carry_the_scenario() {
        let s = Scenario::parse(GOOD).expect("valid");
        let sampler = RequestSampler::new(&s).expect("sampler");
        let mut rng = SmallRng::seed_from_u64(3);
        let mut seen_us = 0;
        for _ in 0..2000 {
            let r = sampler.sample(&mut rng);
            assert_eq!(r.placements, 3);
            let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
            assert_eq!(v["placements"][0]["id"], "demo-mrec");
            assert_eq!(v["placements"][2]["sizes"][0], "300x250");
            assert_eq!(v["page"]["url"], "https://demo-news.example/a");
            assert_eq!(v["device"]["type"], "phone");
            assert!(v["device"]["ua"].as_str().is_some_and(|ua| ua.contains("iPhone")));
            assert_eq!(v["key_values"]["section"], "news");
            let segs = v["user"]["segments"].as_array().map_or(0, Vec::len);
            assert!((1..=2).contains(&segs), "{segs} segments");
            if v["geo"]["country"] == "US" {
                seen_us += 1;
            }
        }
        assert!((1400..1600).contains(&seen_us), "US in {seen_us} of 2000");
        // A user's segments are stable.
        assert_eq!(sampler.user_segments(42), sampler.user_segments(42));
    }
}
