//! model: the catalog — advertisers, campaigns, line items, creatives on the demand side;
//! publishers, sites/apps and placements on the supply side; API keys. Each object is a
//! `Spec` (what the client writes) plus `Meta` (what the platform keeps: id, version, times).

use crate::error::{join_path, FieldError};
use crate::targeting::{is_hostname, Expr};
use crate::Micros;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Lifecycle status shared by every catalog object. `archived` is the soft delete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Active,
    Paused,
    Archived,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "active" => Some(Status::Active),
            "paused" => Some(Status::Paused),
            "archived" => Some(Status::Archived),
            _ => None,
        }
    }
}

/// The kinds of catalog object the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Advertiser,
    Campaign,
    LineItem,
    Creative,
    Publisher,
    Site,
    Placement,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Advertiser,
        Kind::Campaign,
        Kind::LineItem,
        Kind::Creative,
        Kind::Publisher,
        Kind::Site,
        Kind::Placement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Advertiser => "advertiser",
            Kind::Campaign => "campaign",
            Kind::LineItem => "line_item",
            Kind::Creative => "creative",
            Kind::Publisher => "publisher",
            Kind::Site => "site",
            Kind::Placement => "placement",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Prefix of generated ids, so an id says what it names.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Kind::Advertiser => "adv",
            Kind::Campaign => "cmp",
            Kind::LineItem => "li",
            Kind::Creative => "cr",
            Kind::Publisher => "pub",
            Kind::Site => "site",
            Kind::Placement => "plc",
        }
    }

    /// Demand-side objects belong to an advertiser (the tenant); supply-side ones to a publisher.
    pub fn is_demand(self) -> bool {
        matches!(self, Kind::Advertiser | Kind::Campaign | Kind::LineItem | Kind::Creative)
    }

    /// The field naming this kind's parent, and the parent's kind.
    pub fn parent(self) -> Option<(&'static str, Kind)> {
        match self {
            Kind::Advertiser | Kind::Publisher => None,
            Kind::Campaign | Kind::Creative => Some(("advertiser_id", Kind::Advertiser)),
            Kind::LineItem => Some(("campaign_id", Kind::Campaign)),
            Kind::Site => Some(("publisher_id", Kind::Publisher)),
            Kind::Placement => Some(("site_id", Kind::Site)),
        }
    }
}

/// What the platform keeps about an object beside its spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Meta {
    pub id: String,
    /// Optimistic-concurrency version: 1 on create, +1 on each write.
    pub version: u64,
    /// The advertiser (demand side) or publisher (supply side) the object belongs to.
    pub owner_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The catalog version at which this object last changed.
    pub catalog_version: u64,
}

/// A stored catalog object.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub meta: Meta,
    pub spec: Spec,
}

/// The client-writable part of a catalog object.
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    Advertiser(AdvertiserSpec),
    Campaign(CampaignSpec),
    LineItem(LineItemSpec),
    Creative(CreativeSpec),
    Publisher(PublisherSpec),
    Site(SiteSpec),
    Placement(PlacementSpec),
}

// ---------------------------------------------------------------------------------------------
// demand side

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvertiserSpec {
    pub name: String,
    #[serde(default)]
    pub status: Status,
    /// Advertiser domains, sent as `adomain` in bid responses and matched against block lists.
    #[serde(default)]
    pub domains: Vec<String>,
    /// IAB content categories of the advertiser's ads, e.g. `IAB19` or `IAB3-1`.
    #[serde(default)]
    pub categories: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    pub advertiser_id: String,
    pub name: String,
    #[serde(default)]
    pub status: Status,
    /// Flight start (UTC, RFC 3339).
    pub start: DateTime<Utc>,
    /// Flight end (UTC, RFC 3339); open-ended when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    /// Total budget cap over all line items, in micros.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_micros: Option<Micros>,
    /// Frequency caps applied per user across all the campaign's line items.
    #[serde(default)]
    pub frequency_caps: Vec<FrequencyCap>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Sponsorship,
    #[default]
    Standard,
    House,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pricing {
    #[default]
    Cpm,
    Cpc,
    /// A flat fee per day of flight; delivery is weighted by share of voice.
    Flat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pacing {
    #[default]
    Even,
    Asap,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rotation {
    #[default]
    Weighted,
    Even,
    OptimiseCtr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Served by `/v1/decide` (direct-sold and house).
    Direct,
    /// Bids in OpenRTB auctions.
    Rtb,
}

fn default_channels() -> Vec<Channel> {
    vec![Channel::Direct]
}

fn default_time_zone() -> String {
    "UTC".to_string()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_micros: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_micros: Option<Micros>,
    /// IANA time zone in which a budget day starts and ends.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { daily_micros: None, lifetime_micros: None, time_zone: default_time_zone() }
    }
}

/// The window a frequency cap counts in: `"day"`, `"week"`, `"lifetime"` or `{"seconds": N}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapWindow {
    Seconds(u32),
    Day,
    Week,
    Lifetime,
}

impl CapWindow {
    /// The window instance `now` (Unix seconds) falls in, and when it ends. Windows are fixed
    /// and aligned in UTC: N-second buckets since the epoch, UTC days, weeks from Monday
    /// 00:00 UTC; a lifetime is one instance that never ends. Every frequency store counts in
    /// these instances.
    pub fn instance(self, now: i64) -> (i64, i64) {
        const DAY: i64 = 86_400;
        // The Unix epoch was a Thursday; weeks start on Mondays, three days earlier.
        const WEEK_SHIFT: i64 = 3 * DAY;
        /// Buckets of `len` seconds whose boundaries sit `shift` seconds before multiples of `len`.
        fn aligned(now: i64, len: i64, shift: i64) -> (i64, i64) {
            let bucket = now.saturating_add(shift).div_euclid(len);
            let end = bucket.saturating_add(1).saturating_mul(len).saturating_sub(shift);
            (bucket, end)
        }
        match self {
            CapWindow::Seconds(n) => aligned(now, i64::from(n.max(1)), 0),
            CapWindow::Day => aligned(now, DAY, 0),
            CapWindow::Week => aligned(now, 7 * DAY, WEEK_SHIFT),
            CapWindow::Lifetime => (0, i64::MAX),
        }
    }
}

/// At most `count` impressions per user per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    pub count: u32,
    pub window: CapWindow,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreativeAssignment {
    pub creative_id: String,
    /// Relative weight for `weighted` rotation.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItemSpec {
    pub campaign_id: String,
    pub name: String,
    #[serde(default)]
    pub status: Status,
    pub start: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub pricing: Pricing,
    /// CPM: price per thousand impressions; CPC: price per click; flat: fee per day. Micros.
    pub rate_micros: Micros,
    #[serde(default)]
    pub budget: Budget,
    #[serde(default)]
    pub pacing: Pacing,
    /// Share of voice in percent for flat-priced and sponsorship line items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sov_percent: Option<u8>,
    #[serde(default)]
    pub frequency_caps: Vec<FrequencyCap>,
    /// Targeting expression; absent means run-of-network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targeting: Option<Expr>,
    #[serde(default)]
    pub creative_rotation: Rotation,
    #[serde(default)]
    pub creatives: Vec<CreativeAssignment>,
    #[serde(default = "default_channels")]
    pub channels: Vec<Channel>,
    /// Deal ids this line item may bid on in OpenRTB auctions.
    #[serde(default)]
    pub deal_ids: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    #[default]
    Pending,
    Approved,
    Rejected,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Size {
    pub w: u32,
    pub h: u32,
}

/// The ad itself. One key names the format: `banner_html`, `banner_image`, `vast` or `native`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CreativeContent {
    BannerHtml {
        html: String,
    },
    BannerImage {
        image_url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alt: Option<String>,
    },
    /// A VAST document inline (`xml`) or by reference (`url`): exactly one of the two.
    Vast {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        xml: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        duration_secs: u32,
        #[serde(default)]
        mimes: Vec<String>,
    },
    Native {
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        image_url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        icon_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cta: Option<String>,
        sponsored_by: String,
    },
}

impl CreativeContent {
    pub fn format(&self) -> Format {
        match self {
            CreativeContent::BannerHtml { .. } | CreativeContent::BannerImage { .. } => Format::Banner,
            CreativeContent::Vast { .. } => Format::Video,
            CreativeContent::Native { .. } => Format::Native,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreativeSpec {
    pub advertiser_id: String,
    pub name: String,
    #[serde(default)]
    pub status: Status,
    /// Review state; only an admin may change it. An advertiser's edit of the content resets it to pending.
    #[serde(default)]
    pub approval: Approval,
    pub content: CreativeContent,
    #[serde(default)]
    pub sizes: Vec<Size>,
    pub click_url: String,
    pub landing_domain: String,
    #[serde(default)]
    pub categories: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// supply side

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublisherSpec {
    pub name: String,
    #[serde(default)]
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    Site,
    App,
}

/// A web site (with `domain`) or a mobile/CTV app (with `bundle`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    pub publisher_id: String,
    pub name: String,
    #[serde(default)]
    pub status: Status,
    pub kind: SiteKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    #[serde(default)]
    pub categories: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Banner,
    Video,
    Native,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuctionType {
    FirstPrice,
    #[default]
    SecondPrice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VideoPlacement {
    Instream,
    Outstream,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoSettings {
    pub placement: VideoPlacement,
    #[serde(default)]
    pub min_duration_secs: u32,
    pub max_duration_secs: u32,
    #[serde(default)]
    pub mimes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementSpec {
    pub site_id: String,
    pub name: String,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub sizes: Vec<Size>,
    pub formats: Vec<Format>,
    /// Minimum price per thousand impressions, in micros.
    #[serde(default)]
    pub floor_micros: Micros,
    #[serde(default)]
    pub blocked_categories: Vec<String>,
    /// Advertiser domains that may not serve here.
    #[serde(default)]
    pub blocked_adomains: Vec<String>,
    #[serde(default)]
    pub auction_type: AuctionType,
    /// Whether this placement may show an advertiser already shown elsewhere on the same page.
    #[serde(default)]
    pub allow_same_advertiser: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoSettings>,
}

// ---------------------------------------------------------------------------------------------
// parsing and validation

impl Spec {
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Advertiser(_) => Kind::Advertiser,
            Spec::Campaign(_) => Kind::Campaign,
            Spec::LineItem(_) => Kind::LineItem,
            Spec::Creative(_) => Kind::Creative,
            Spec::Publisher(_) => Kind::Publisher,
            Spec::Site(_) => Kind::Site,
            Spec::Placement(_) => Kind::Placement,
        }
    }

    pub fn status(&self) -> Status {
        match self {
            Spec::Advertiser(s) => s.status,
            Spec::Campaign(s) => s.status,
            Spec::LineItem(s) => s.status,
            Spec::Creative(s) => s.status,
            Spec::Publisher(s) => s.status,
            Spec::Site(s) => s.status,
            Spec::Placement(s) => s.status,
        }
    }

    pub fn set_status(&mut self, status: Status) {
        match self {
            Spec::Advertiser(s) => s.status = status,
            Spec::Campaign(s) => s.status = status,
            Spec::LineItem(s) => s.status = status,
            Spec::Creative(s) => s.status = status,
            Spec::Publisher(s) => s.status = status,
            Spec::Site(s) => s.status = status,
            Spec::Placement(s) => s.status = status,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Spec::Advertiser(s) => &s.name,
            Spec::Campaign(s) => &s.name,
            Spec::LineItem(s) => &s.name,
            Spec::Creative(s) => &s.name,
            Spec::Publisher(s) => &s.name,
            Spec::Site(s) => &s.name,
            Spec::Placement(s) => &s.name,
        }
    }

    /// The id of the parent object, if this kind has one.
    pub fn parent_id(&self) -> Option<&str> {
        match self {
            Spec::Advertiser(_) | Spec::Publisher(_) => None,
            Spec::Campaign(s) => Some(&s.advertiser_id),
            Spec::LineItem(s) => Some(&s.campaign_id),
            Spec::Creative(s) => Some(&s.advertiser_id),
            Spec::Site(s) => Some(&s.publisher_id),
            Spec::Placement(s) => Some(&s.site_id),
        }
    }

    pub fn to_json(&self) -> Value {
        let v = match self {
            Spec::Advertiser(s) => serde_json::to_value(s),
            Spec::Campaign(s) => serde_json::to_value(s),
            Spec::LineItem(s) => serde_json::to_value(s),
            Spec::Creative(s) => serde_json::to_value(s),
            Spec::Publisher(s) => serde_json::to_value(s),
            Spec::Site(s) => serde_json::to_value(s),
            Spec::Placement(s) => serde_json::to_value(s),
        };
        // Serialising plain data structs to a Value cannot fail (no non-string map keys).
        v.unwrap_or(Value::Null)
    }

    /// Reads a spec of `kind` from JSON, rejecting unknown fields, then validates it on its own
    /// (checks that need other objects happen in the service that writes the store).
    pub fn from_json(kind: Kind, value: &Value) -> Result<Spec, FieldError> {
        if !value.is_object() {
            return Err(FieldError::malformed("invalid_type", "", "expected a JSON object"));
        }
        // Targeting is parsed first by its own grammar so that its errors carry their codes.
        if kind == Kind::LineItem {
            if let Some(t) = value.get("targeting").filter(|t| !t.is_null()) {
                Expr::parse(t, "targeting")?;
            }
        }
        let spec = match kind {
            Kind::Advertiser => Spec::Advertiser(read(value)?),
            Kind::Campaign => Spec::Campaign(read(value)?),
            Kind::LineItem => Spec::LineItem(read(value)?),
            Kind::Creative => Spec::Creative(read(value)?),
            Kind::Publisher => Spec::Publisher(read(value)?),
            Kind::Site => Spec::Site(read(value)?),
            Kind::Placement => Spec::Placement(read(value)?),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks of one object on its own.
    pub fn validate(&self) -> Result<(), FieldError> {
        let name = self.name();
        if name.trim().is_empty() || name.len() > 256 {
            return Err(invalid("name", "name must be 1 to 256 bytes and not blank"));
        }
        if let Some(parent) = self.parent_id() {
            if let Some((field, _)) = self.kind().parent() {
                validate_id(parent, field)?;
            }
        }
        match self {
            Spec::Advertiser(s) => {
                hostnames(&s.domains, "domains")?;
                categories(&s.categories, "categories")
            }
            Spec::Campaign(s) => {
                flight(s.start, s.end)?;
                positive_opt(s.budget_micros, "budget_micros")?;
                caps(&s.frequency_caps)
            }
            Spec::LineItem(s) => validate_line_item(s),
            Spec::Creative(s) => validate_creative(s),
            Spec::Publisher(s) => match &s.domain {
                Some(d) if !is_hostname(d) => Err(invalid("domain", "expected a lower-case host name")),
                _ => Ok(()),
            },
            Spec::Site(s) => validate_site(s),
            Spec::Placement(s) => validate_placement(s),
        }
    }
}

fn read<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, FieldError> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    T::deserialize(de).map_err(|e| {
        let path = track.path().to_string();
        let path = if path == "." { String::new() } else { path };
        FieldError::from_serde(path, &e)
    })
}

fn invalid(field: &str, msg: impl Into<String>) -> FieldError {
    FieldError::unprocessable("invalid_value", field, msg)
}

/// Client-chosen ids: 1–128 bytes of letters, digits and `-_.:`.
pub fn validate_id(id: &str, field: &str) -> Result<(), FieldError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::malformed(
            "invalid_id",
            field,
            "an id is 1 to 128 characters of letters, digits, '-', '_', '.' or ':'",
        ))
    }
}

fn flight(start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Result<(), FieldError> {
    match end {
        Some(end) if end <= start => {
            Err(FieldError::unprocessable("invalid_flight", "end", "flight end must be after its start"))
        }
        _ => Ok(()),
    }
}

/// The largest rate, floor or budget accepted (a million currency units, in micros): keeps
/// every sum of money far from overflow.
pub const MAX_MONEY_MICROS: Micros = 1_000_000_000_000_000;

fn positive_opt(v: Option<Micros>, field: &str) -> Result<(), FieldError> {
    match v {
        Some(m) if m <= 0 || m > MAX_MONEY_MICROS => {
            Err(invalid(field, "a budget is a positive number of micros, at most 10^15"))
        }
        _ => Ok(()),
    }
}

fn hostnames(list: &[String], field: &str) -> Result<(), FieldError> {
    for (i, d) in list.iter().enumerate() {
        if !is_hostname(d) {
            return Err(invalid(&format!("{field}[{i}]"), format!("`{d}` is not a lower-case host name")));
        }
    }
    Ok(())
}

fn categories(list: &[String], field: &str) -> Result<(), FieldError> {
    for (i, c) in list.iter().enumerate() {
        let ok = !c.is_empty() && c.len() <= 32 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(invalid(&format!("{field}[{i}]"), format!("`{c}` is not an IAB category id (e.g. IAB3-1)")));
        }
    }
    Ok(())
}

fn caps(list: &[FrequencyCap]) -> Result<(), FieldError> {
    for (i, cap) in list.iter().enumerate() {
        let at = format!("frequency_caps[{i}]");
        if cap.count == 0 {
            return Err(invalid(&join_path(&at, "count"), "a cap's count must be at least 1"));
        }
        if cap.window == CapWindow::Seconds(0) {
            return Err(invalid(&join_path(&at, "window.seconds"), "a window must be at least 1 second"));
        }
    }
    Ok(())
}

fn time_zone(tz: &str, field: &str) -> Result<(), FieldError> {
    tz.parse::<chrono_tz::Tz>()
        .map(|_| ())
        .map_err(|_| FieldError::malformed("invalid_timezone", field, format!("`{tz}` is not an IANA time zone")))
}

fn validate_line_item(s: &LineItemSpec) -> Result<(), FieldError> {
    flight(s.start, s.end)?;
    if s.rate_micros < 0 || s.rate_micros > MAX_MONEY_MICROS {
        return Err(invalid("rate_micros", "a rate is 0 to 10^15 micros"));
    }
    if s.rate_micros == 0 && s.priority != Priority::House {
        return Err(invalid("rate_micros", "only house line items may have a zero rate"));
    }
    positive_opt(s.budget.daily_micros, "budget.daily_micros")?;
    positive_opt(s.budget.lifetime_micros, "budget.lifetime_micros")?;
    if let (Some(d), Some(l)) = (s.budget.daily_micros, s.budget.lifetime_micros) {
        if d > l {
            return Err(invalid("budget.daily_micros", "the daily budget exceeds the lifetime budget"));
        }
    }
    time_zone(&s.budget.time_zone, "budget.time_zone")?;
    if s.pacing == Pacing::Even
        && s.budget.daily_micros.is_none()
        && s.budget.lifetime_micros.is_none()
        && s.priority != Priority::House
    {
        return Err(invalid(
            "pacing",
            "even pacing needs a daily or lifetime budget; use asap for unbudgeted line items",
        ));
    }
    if s.pacing == Pacing::Even
        && s.budget.daily_micros.is_none()
        && s.end.is_none()
        && s.budget.lifetime_micros.is_some()
    {
        return Err(invalid("end", "even pacing of a lifetime budget needs a flight end"));
    }
    match s.sov_percent {
        Some(p) if p == 0 || p > 100 => return Err(invalid("sov_percent", "share of voice is 1..=100 percent")),
        _ => {}
    }
    caps(&s.frequency_caps)?;
    for (i, c) in s.creatives.iter().enumerate() {
        validate_id(&c.creative_id, &format!("creatives[{i}].creative_id"))?;
        if s.creative_rotation == Rotation::Weighted && c.weight == 0 {
            return Err(invalid(&format!("creatives[{i}].weight"), "a weight must be at least 1"));
        }
        if s.creatives[..i].iter().any(|o| o.creative_id == c.creative_id) {
            return Err(invalid(&format!("creatives[{i}].creative_id"), "creative assigned twice"));
        }
    }
    if s.channels.is_empty() {
        return Err(FieldError::malformed("empty_set", "channels", "a line item needs at least one channel"));
    }
    for (i, d) in s.deal_ids.iter().enumerate() {
        validate_id(d, &format!("deal_ids[{i}]"))?;
    }
    if !s.deal_ids.is_empty() && !s.channels.contains(&Channel::Rtb) {
        return Err(invalid("deal_ids", "deals are traded over OpenRTB: add the rtb channel"));
    }
    Ok(())
}

fn url(u: &str, field: &str) -> Result<(), FieldError> {
    let ok = (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() > 8
        && u.len() <= 4096
        && u.is_ascii()
        && !u.contains(|c: char| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid(field, "expected an absolute http(s) URL"))
    }
}

fn validate_creative(s: &CreativeSpec) -> Result<(), FieldError> {
    url(&s.click_url, "click_url")?;
    if !is_hostname(&s.landing_domain) {
        return Err(invalid("landing_domain", "expected a lower-case host name"));
    }
    categories(&s.categories, "categories")?;
    sizes(&s.sizes, "sizes")?;
    match &s.content {
        CreativeContent::BannerHtml { html } => {
            if html.trim().is_empty() {
                return Err(invalid("content.banner_html.html", "markup must not be empty"));
            }
        }
        CreativeContent::BannerImage { image_url, .. } => url(image_url, "content.banner_image.image_url")?,
        CreativeContent::Vast { xml, url: vast_url, duration_secs, .. } => {
            match (xml, vast_url) {
                (Some(x), None) if !x.trim().is_empty() => {}
                (None, Some(u)) => url(u, "content.vast.url")?,
                _ => return Err(invalid("content.vast", "give exactly one of `xml` or `url`")),
            }
            if *duration_secs == 0 {
                return Err(invalid("content.vast.duration_secs", "a video lasts at least one second"));
            }
        }
        CreativeContent::Native { image_url, icon_url, .. } => {
            url(image_url, "content.native.image_url")?;
            if let Some(icon) = icon_url {
                url(icon, "content.native.icon_url")?;
            }
        }
    }
    if s.content.format() == Format::Banner && s.sizes.is_empty() {
        return Err(invalid("sizes", "a banner needs at least one size"));
    }
    Ok(())
}

fn sizes(list: &[Size], field: &str) -> Result<(), FieldError> {
    for (i, sz) in list.iter().enumerate() {
        if sz.w == 0 || sz.h == 0 {
            return Err(invalid(&format!("{field}[{i}]"), "width and height must be positive"));
        }
    }
    Ok(())
}

fn validate_site(s: &SiteSpec) -> Result<(), FieldError> {
    categories(&s.categories, "categories")?;
    match (s.kind, &s.domain, &s.bundle) {
        (SiteKind::Site, Some(d), None) if is_hostname(d) => Ok(()),
        (SiteKind::Site, Some(_), None) => Err(invalid("domain", "expected a lower-case host name")),
        (SiteKind::Site, _, _) => Err(invalid("domain", "a site has a `domain` and no `bundle`")),
        (SiteKind::App, None, Some(b)) if !b.trim().is_empty() && b.len() <= 256 => Ok(()),
        (SiteKind::App, _, _) => {
            Err(invalid("bundle", "an app has a `bundle` (store id or reverse-DNS name) and no `domain`"))
        }
    }
}

fn validate_placement(s: &PlacementSpec) -> Result<(), FieldError> {
    if s.formats.is_empty() {
        return Err(FieldError::malformed("empty_set", "formats", "a placement accepts at least one format"));
    }
    sizes(&s.sizes, "sizes")?;
    if s.formats.contains(&Format::Banner) && s.sizes.is_empty() {
        return Err(invalid("sizes", "a banner placement needs at least one size"));
    }
    if s.floor_micros < 0 || s.floor_micros > MAX_MONEY_MICROS {
        return Err(invalid("floor_micros", "a floor is 0 to 10^15 micros"));
    }
    categories(&s.blocked_categories, "blocked_categories")?;
    hostnames(&s.blocked_adomains, "blocked_adomains")?;
    if let Some(v) = &s.video {
        if v.max_duration_secs == 0 || v.max_duration_secs < v.min_duration_secs {
            return Err(invalid(
                "video.max_duration_secs",
                "max duration must be positive and at least the min duration",
            ));
        }
        if !s.formats.contains(&Format::Video) {
            return Err(invalid("video", "video settings need the video format"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// API keys

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees and changes everything.
    Admin,
    /// Sees and changes only its advertiser's objects.
    Advertiser,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Revoked,
}

/// An API key as stored: the secret itself is never kept, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertiser_id: Option<String>,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub status: KeyStatus,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub key_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line_item() -> Value {
        json!({"campaign_id": "c1", "name": "li", "start": "2026-01-01T00:00:00Z", "rate_micros": 2_000_000,
               "budget": {"daily_micros": 10_000_000}})
    }

    #[test]
    fn line_item_defaults_and_round_trip() {
        let spec = Spec::from_json(Kind::LineItem, &line_item()).expect("valid");
        let Spec::LineItem(li) = &spec else { panic!("kind") };
        assert_eq!((li.priority, li.pricing, li.pacing), (Priority::Standard, Pricing::Cpm, Pacing::Even));
        assert_eq!(li.channels, vec![Channel::Direct]);
        assert_eq!(li.budget.time_zone, "UTC");
        assert_eq!(Spec::from_json(Kind::LineItem, &spec.to_json()).expect("round trip"), spec);
    }

    #[test]
    fn unknown_and_missing_fields_name_the_field() {
        let mut v = line_item();
        v["budget"]["weekly_micros"] = json!(1);
        let e = Spec::from_json(Kind::LineItem, &v).expect_err("unknown");
        assert_eq!((e.code, e.field.as_str()), ("unknown_field", "budget.weekly_micros"));
        let e = Spec::from_json(Kind::Advertiser, &json!({"domains": []})).expect_err("missing");
        assert_eq!((e.code, e.field.as_str()), ("missing_field", "name"));
        let e = Spec::from_json(
            Kind::LineItem,
            &json!({"campaign_id": "c", "name": "n", "start": "yesterday", "rate_micros": 1}),
        )
        .expect_err("bad time");
        assert_eq!(e.field, "start");
    }

    #[test]
    fn semantic_checks() {
        let mut v = line_item();
        v["end"] = json!("2025-01-01T00:00:00Z");
        assert_eq!(Spec::from_json(Kind::LineItem, &v).expect_err("flight").code, "invalid_flight");
        let mut v = line_item();
        v["budget"]["time_zone"] = json!("Nowhere/Else");
        assert_eq!(Spec::from_json(Kind::LineItem, &v).expect_err("tz").field, "budget.time_zone");
        let mut v = line_item();
        v["deal_ids"] = json!(["d1"]);
        assert_eq!(Spec::from_json(Kind::LineItem, &v).expect_err("deal").field, "deal_ids");
        let mut v = line_item();
        v["frequency_caps"] = json!([{"count": 3, "window": "day"}, {"count": 1, "window": {"seconds": 0}}]);
        assert_eq!(Spec::from_json(Kind::LineItem, &v).expect_err("cap").field, "frequency_caps[1].window.seconds");
        let mut v = line_item();
        v["targeting"] = json!({"all": [{"ip_cidr": ["nope"]}]});
        let e = Spec::from_json(Kind::LineItem, &v).expect_err("cidr");
        assert_eq!((e.code, e.field.as_str()), ("invalid_cidr", "targeting.all[0].ip_cidr[0]"));
    }

    #[test]
    fn creative_formats() {
        let c = json!({"advertiser_id": "a", "name": "v", "content": {"vast": {"url": "https://x.example/v.xml", "duration_secs": 15}},
                       "click_url": "https://x.example/", "landing_domain": "x.example"});
        let Spec::Creative(cr) = Spec::from_json(Kind::Creative, &c).expect("video") else { panic!("kind") };
        assert_eq!(cr.content.format(), Format::Video);
        let mut bad = c.clone();
        bad["content"] = json!({"vast": {"duration_secs": 15}});
        assert_eq!(Spec::from_json(Kind::Creative, &bad).expect_err("no source").field, "content.vast");
        let mut banner = c;
        banner["content"] = json!({"banner_image": {"image_url": "https://x.example/a.png"}});
        assert_eq!(Spec::from_json(Kind::Creative, &banner).expect_err("sizes").field, "sizes");
    }

    #[test]
    fn site_needs_domain_app_needs_bundle() {
        let s = json!({"publisher_id": "p", "name": "s", "kind": "app", "domain": "x.example"});
        assert_eq!(Spec::from_json(Kind::Site, &s).expect_err("app").field, "bundle");
        let s = json!({"publisher_id": "p", "name": "s", "kind": "app", "bundle": "com.example.game"});
        assert!(Spec::from_json(Kind::Site, &s).is_ok());
    }
}
