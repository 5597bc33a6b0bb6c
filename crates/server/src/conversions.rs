//! conversions: what happened after the ad. A conversion (a sale, a sign-up) reported by the
//! advertiser — by a pixel on its confirmation page (`GET /v1/t/conv`) or server to server
//! (`POST /v1/conversions`) — is attributed to the user's last click on one of that
//! advertiser's ads within the click window (or, when view-through is on, to the last
//! impression within the view window), found by the click id the click redirect appended to
//! the landing URL (`adp_click=...`) or by the user id the ad request carried. Each order id
//! counts once per advertiser.
//!
//! The touches are kept in memory, bounded and expiring (moka caches); after a restart they
//! are rebuilt from the event log's replay (clicks and impressions within the windows).

use crate::error::ApiError;
use crate::tracking::TrackedAd;
use adp_domain::events::{Event, EventKind, EventRef};
use adp_domain::Micros;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use moka::sync::Cache;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

/// Settings of conversion attribution.
#[derive(Clone, Debug)]
pub struct AttributionSettings {
    /// Seconds after a click during which a conversion is credited to it.
    pub click_window_secs: u64,
    /// Seconds after an impression during which an unclicked conversion is credited to it;
    /// 0 turns view-through attribution off.
    pub view_window_secs: u64,
    /// Touches (clicks, impressions) remembered at most.
    pub max_touches: u64,
    /// Append `adp_click=<click id>` to landing URLs on the click redirect.
    pub append_click_id: bool,
}

impl Default for AttributionSettings {
    fn default() -> Self {
        AttributionSettings {
            click_window_secs: 30 * 86_400,
            view_window_secs: 0,
            max_touches: 2_000_000,
            append_click_id: true,
        }
    }
}

/// One click or impression that a conversion may be credited to.
#[derive(Clone, Debug, PartialEq)]
pub struct Touch {
    pub decision_id: String,
    pub advertiser_id: String,
    pub campaign_id: String,
    pub line_item_id: String,
    pub creative_id: String,
    pub publisher_id: String,
    pub site_id: String,
    pub placement_id: String,
    pub deal_id: Option<String>,
    pub user_key: u64,
    pub at_ms: i64,
}

impl Touch {
    pub fn from_ad(ad: &TrackedAd, at_ms: i64) -> Touch {
        Touch {
            decision_id: ad.decision_id.clone(),
            advertiser_id: ad.advertiser_id.clone(),
            campaign_id: ad.campaign_id.clone(),
            line_item_id: ad.line_item_id.clone(),
            creative_id: ad.creative_id.clone(),
            publisher_id: ad.publisher_id.clone(),
            site_id: ad.site_id.clone(),
            placement_id: ad.placement_id.clone(),
            deal_id: (!ad.deal_id.is_empty()).then(|| ad.deal_id.clone()),
            user_key: ad.user_key,
            at_ms,
        }
    }

    pub fn from_event(e: &EventRef<'_>) -> Touch {
        Touch {
            decision_id: e.decision_id.to_owned(),
            advertiser_id: e.advertiser_id.to_owned(),
            campaign_id: e.campaign_id.to_owned(),
            line_item_id: e.line_item_id.to_owned(),
            creative_id: e.creative_id.to_owned(),
            publisher_id: e.publisher_id.to_owned(),
            site_id: e.site_id.to_owned(),
            placement_id: e.placement_id.to_owned(),
            deal_id: e.deal_id.map(str::to_owned),
            user_key: e.user_key,
            at_ms: e.event_time_ms,
        }
    }
}

/// How a conversion was credited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Credit {
    Click,
    View,
}

/// The remembered touches and counted orders.
pub struct Attribution {
    settings: AttributionSettings,
    /// (user key, advertiser) → last click.
    clicks: Cache<(u64, String), Arc<Touch>>,
    /// click id (the click's decision id) → the click.
    click_ids: Cache<String, Arc<Touch>>,
    /// (user key, advertiser) → last impression (view-through only).
    views: Option<Cache<(u64, String), Arc<Touch>>>,
    /// (advertiser, order id) already counted.
    orders: Cache<(String, String), ()>,
}

impl Attribution {
    pub fn new(settings: AttributionSettings) -> Attribution {
        fn cache<K, V>(max: u64, secs: u64) -> Cache<K, V>
        where
            K: std::hash::Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            Cache::builder().max_capacity(max).time_to_live(Duration::from_secs(secs.max(1))).build()
        }
        let max = settings.max_touches;
        Attribution {
            clicks: cache(max, settings.click_window_secs),
            click_ids: cache(max, settings.click_window_secs),
            views: (settings.view_window_secs > 0).then(|| cache(max, settings.view_window_secs)),
            orders: cache(max, settings.click_window_secs.max(settings.view_window_secs)),
            settings,
        }
    }

    pub fn settings(&self) -> &AttributionSettings {
        &self.settings
    }

    fn within(&self, t: &Touch, now_ms: i64, window_secs: u64) -> bool {
        now_ms.saturating_sub(t.at_ms) <= (window_secs as i64).saturating_mul(1000)
    }

    /// Remembers a click (it replaces the user's earlier click on that advertiser).
    pub fn record_click(&self, t: Touch, now_ms: i64) {
        if !self.within(&t, now_ms, self.settings.click_window_secs) {
            return;
        }
        let t = Arc::new(t);
        self.click_ids.insert(t.decision_id.clone(), Arc::clone(&t));
        if t.user_key != 0 {
            self.clicks.insert((t.user_key, t.advertiser_id.clone()), t);
        }
    }

    /// Remembers an impression, for view-through attribution.
    pub fn record_view(&self, t: Touch, now_ms: i64) {
        if let Some(views) = &self.views {
            if t.user_key != 0 && self.within(&t, now_ms, self.settings.view_window_secs) {
                views.insert((t.user_key, t.advertiser_id.clone()), Arc::new(t));
            }
        }
    }

    /// The touch a conversion of `advertiser` is credited to: the click named by `click_id`,
    /// else the user's last click, else (view-through) the user's last impression.
    pub fn credit(
        &self,
        advertiser: &str,
        click_id: Option<&str>,
        user_key: Option<u64>,
        now_ms: i64,
    ) -> Option<(Arc<Touch>, Credit)> {
        let click_window = self.settings.click_window_secs;
        if let Some(t) = click_id.and_then(|c| self.click_ids.get(c)) {
            if t.advertiser_id == advertiser && self.within(&t, now_ms, click_window) {
                return Some((t, Credit::Click));
            }
        }
        let user = user_key.filter(|u| *u != 0)?;
        let key = (user, advertiser.to_string());
        if let Some(t) = self.clicks.get(&key).filter(|t| self.within(t, now_ms, click_window)) {
            return Some((t, Credit::Click));
        }
        let views = self.views.as_ref()?;
        views.get(&key).filter(|t| self.within(t, now_ms, self.settings.view_window_secs)).map(|t| (t, Credit::View))
    }

    /// Claims an order id; false if it was counted already.
    pub fn claim_order(&self, advertiser: &str, order_id: &str) -> bool {
        let key = (advertiser.to_string(), order_id.to_string());
        let entry = self.orders.entry(key).or_insert(());
        entry.is_fresh()
    }

    /// Gives an order id back (its event could not be recorded).
    pub fn release_order(&self, advertiser: &str, order_id: &str) {
        self.orders.invalidate(&(advertiser.to_string(), order_id.to_string()));
    }
}

/// A conversion as reported by the advertiser.
#[derive(Deserialize, Debug, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversionRequest {
    pub advertiser_id: String,
    /// The advertiser's order or transaction id: each counts once.
    pub order_id: String,
    /// The click id the landing URL carried (`adp_click`).
    #[serde(default)]
    pub click_id: Option<String>,
    /// The user id the ad requests carried.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The conversion's value in micros of `currency`.
    #[serde(default)]
    pub value_micros: Micros,
    /// ISO 4217; default the platform currency.
    #[serde(default)]
    pub currency: Option<String>,
}

/// What became of a reported conversion.
#[derive(Serialize, Debug, ToSchema)]
pub struct ConversionResult {
    pub conversion_id: String,
    pub attributed: bool,
    pub credit: Option<Credit>,
    pub line_item_id: Option<String>,
    pub decision_id: Option<String>,
    /// The value in micros of the platform currency.
    pub value_micros: Micros,
}

fn bad(code: &'static str, field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, field, message)
}

impl ConversionRequest {
    pub fn check(&self) -> Result<(), ApiError> {
        for (v, f) in [(&self.advertiser_id, "advertiser_id"), (&self.order_id, "order_id")] {
            if v.trim().is_empty() {
                return Err(bad("missing_field", f, format!("{f} is required")));
            }
            if v.len() > 256 {
                return Err(bad("too_long", f, "at most 256 bytes"));
            }
        }
        for (v, f) in [(&self.click_id, "click_id"), (&self.user_id, "user_id")] {
            if v.as_ref().is_some_and(|v| v.len() > 256) {
                return Err(bad("too_long", f, "at most 256 bytes"));
            }
        }
        if !(0..=adp_domain::MAX_MONEY_MICROS).contains(&self.value_micros) {
            return Err(bad("invalid_value", "value_micros", "0 to 10^15 micros"));
        }
        if let Some(c) = &self.currency {
            if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(bad("invalid_value", "currency", "a three-letter ISO 4217 code"));
            }
        }
        Ok(())
    }
}

impl crate::serving::Serving {
    /// Counts one conversion: credited to a click or view when one is found, recorded either
    /// way, each order once.
    pub fn convert(&self, req: &ConversionRequest, now: DateTime<Utc>) -> Result<ConversionResult, ApiError> {
        req.check()?;
        let settings = &self.settings().rtb;
        let currency = req.currency.as_deref().unwrap_or(&settings.currency).to_ascii_uppercase();
        let value = settings.fx.convert_micros(req.value_micros, &currency, &settings.currency).ok_or_else(|| {
            ApiError::unprocessable("currency_not_supported", "currency", "no exchange rate for this currency (rtb.fx)")
        })?;
        let attribution = self.attribution();
        if !attribution.claim_order(&req.advertiser_id, &req.order_id) {
            return Err(ApiError::new(StatusCode::CONFLICT, "duplicate_order", "this order was already counted")
                .with_field("order_id"));
        }
        let user_key = req.user_id.as_deref().filter(|u| !u.is_empty()).map(adp_engine::snapshot::user_key);
        let now_ms = now.timestamp_millis();
        let credited = attribution.credit(&req.advertiser_id, req.click_id.as_deref(), user_key, now_ms);
        let id = uuid::Uuid::now_v7().to_string();
        let (t, credit) = match &credited {
            Some((t, c)) => (Some(t.as_ref()), Some(*c)),
            None => (None, None),
        };
        let event = Event {
            id: id.clone(),
            kind: EventKind::Conversion,
            event_time_ms: now_ms,
            receive_time_ms: now_ms,
            request_id: req.order_id.clone(),
            decision_id: t.map(|t| t.decision_id.clone()).unwrap_or_default(),
            advertiser_id: req.advertiser_id.clone(),
            campaign_id: t.map(|t| t.campaign_id.clone()).unwrap_or_default(),
            line_item_id: t.map(|t| t.line_item_id.clone()).unwrap_or_default(),
            creative_id: t.map(|t| t.creative_id.clone()).unwrap_or_default(),
            publisher_id: t.map(|t| t.publisher_id.clone()).unwrap_or_default(),
            site_id: t.map(|t| t.site_id.clone()).unwrap_or_default(),
            placement_id: t.map(|t| t.placement_id.clone()).unwrap_or_default(),
            deal_id: t.and_then(|t| t.deal_id.clone()),
            user_key: user_key.or(t.map(|t| t.user_key)).unwrap_or(0),
            country: None,
            device_type: None,
            price_micros: value,
            cost_micros: 0,
            currency: settings.currency.clone(),
            reason: Some(
                match credit {
                    Some(Credit::Click) => "click",
                    Some(Credit::View) => "view",
                    None => "unattributed",
                }
                .into(),
            ),
            stands_for_request: false,
        };
        if self.submit_event(&EventRef::of(&event)).is_err() {
            attribution.release_order(&req.advertiser_id, &req.order_id);
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "event_queue_full", "try again later"));
        }
        self.stats.conversions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(ConversionResult {
            conversion_id: id,
            attributed: credit.is_some(),
            credit,
            line_item_id: t.map(|t| t.line_item_id.clone()),
            decision_id: t.map(|t| t.decision_id.clone()),
            value_micros: value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(decision: &str, adv: &str, user: u64, at_ms: i64) -> Touch {
        Touch {
            decision_id: decision.into(),
            advertiser_id: adv.into(),
            campaign_id: "c".into(),
            line_item_id: format!("li-{decision}"),
            creative_id: "cr".into(),
            publisher_id: "p".into(),
            site_id: "s".into(),
            placement_id: "pl".into(),
            deal_id: None,
            user_key: user,
            at_ms,
        }
    }

    #[test]
    fn last_click_wins_within_the_window_and_views_only_when_on() {
        let a = Attribution::new(AttributionSettings { click_window_secs: 60, ..Default::default() });
        a.record_click(touch("d1", "adv", 7, 1_000), 1_000);
        a.record_click(touch("d2", "adv", 7, 2_000), 2_000);
        a.record_click(touch("d3", "other", 7, 3_000), 3_000);
        let (t, c) = a.credit("adv", None, Some(7), 10_000).expect("credited");
        assert_eq!((t.decision_id.as_str(), c), ("d2", Credit::Click));
        // By click id, even without a user id; the click id must be this advertiser's.
        assert_eq!(a.credit("adv", Some("d1"), None, 10_000).map(|(t, _)| t.decision_id.clone()), Some("d1".into()));
        assert!(a.credit("adv", Some("d3"), None, 10_000).is_none());
        // Outside the window: nothing.
        assert!(a.credit("adv", None, Some(7), 2_000 + 61_000).is_none());
        // Impressions count only with view-through on.
        a.record_view(touch("v1", "adv", 8, 1_000), 1_000);
        assert!(a.credit("adv", None, Some(8), 2_000).is_none());
        let v = Attribution::new(AttributionSettings { view_window_secs: 60, ..Default::default() });
        v.record_view(touch("v1", "adv", 8, 1_000), 1_000);
        assert_eq!(v.credit("adv", None, Some(8), 2_000).map(|(_, c)| c), Some(Credit::View));
    }

    #[test]
    fn each_order_counts_once_unless_released() {
        let a = Attribution::new(AttributionSettings::default());
        assert!(a.claim_order("adv", "o1"));
        assert!(!a.claim_order("adv", "o1"));
        assert!(a.claim_order("other", "o1"), "order ids are per advertiser");
        a.release_order("adv", "o1");
        assert!(a.claim_order("adv", "o1"));
    }
}
