//! OpenRTB 2.5 → 2.6: fields that 2.5 exchanges (and Prebid Server in 2.5 mode) carry in
//! `ext` objects, lifted into their 2.6 places when the 2.6 field is absent.

use crate::enums::{Plcmt, VideoPlacement};
use crate::request::{BidRequest, Eid, SupplyChain};
use serde::Deserialize;
use serde_json::Value;

/// What [`BidRequest::normalize_2_5`] lifted: the 2.6 paths it filled in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Normalized {
    /// Paths of 2.6 fields that were filled from 2.5 locations, e.g. `regs.gdpr`,
    /// `imp[0].video.plcmt`.
    pub lifted: Vec<String>,
}

impl Normalized {
    /// Whether anything was lifted (i.e. the request looked like 2.5).
    pub fn any(&self) -> bool {
        !self.lifted.is_empty()
    }
}

fn ext_field<'a>(ext: &'a Option<Value>, key: &str) -> Option<&'a Value> {
    ext.as_ref()?.as_object()?.get(key).filter(|v| !v.is_null())
}

fn as_flag(v: &Value) -> Option<i32> {
    match v {
        Value::Bool(b) => Some(i32::from(*b)),
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Best-effort mapping of the 2.5 `video.placement` onto the 2.6 `video.plcmt` (the two lists
/// do not correspond one to one; the 2.5 value stays in `placement`):
///
/// | 2.5 `placement` | 2.6 `plcmt` |
/// |---|---|
/// | 1 in-stream | 1 instream |
/// | 2 in-banner, 3 in-article, 4 in-feed | 4 no content / standalone |
/// | 5 interstitial / slider / floating | 3 interstitial |
///
/// Other values map to nothing.
pub fn plcmt_from_placement(placement: VideoPlacement) -> Option<Plcmt> {
    match placement {
        VideoPlacement::IN_STREAM => Some(Plcmt::INSTREAM),
        VideoPlacement::IN_BANNER | VideoPlacement::IN_ARTICLE | VideoPlacement::IN_FEED => {
            Some(Plcmt::NO_CONTENT_STANDALONE)
        }
        VideoPlacement::INTERSTITIAL_SLIDER_FLOATING => Some(Plcmt::INTERSTITIAL),
        _ => None,
    }
}

impl BidRequest<'_> {
    /// Lifts OpenRTB 2.5 locations into the 2.6 fields, only where the 2.6 field is absent
    /// (a request that has both keeps its 2.6 value). `ext` objects are left as they were.
    /// Idempotent; cheap when there is nothing to do.
    ///
    /// | 2.5 location | 2.6 field |
    /// |---|---|
    /// | `regs.ext.gdpr` | `regs.gdpr` |
    /// | `regs.ext.us_privacy` | `regs.us_privacy` |
    /// | `regs.ext.gpp`, `regs.ext.gpp_sid` | `regs.gpp`, `regs.gpp_sid` |
    /// | `user.ext.consent` | `user.consent` |
    /// | `user.ext.eids` | `user.eids` |
    /// | `source.ext.schain` | `source.schain` |
    /// | `imp[].video.placement` | `imp[].video.plcmt` (see [`plcmt_from_placement`]) |
    /// | `imp[].video.protocol` (2.2) | `imp[].video.protocols` |
    /// | `imp[].ext.prebid.is_rewarded_inventory` | `imp[].rwdd` |
    ///
    /// A value of the wrong shape in an `ext` is skipped, never an error.
    pub fn normalize_2_5(&mut self) -> Normalized {
        let mut lifted = Vec::new();

        if let Some(regs) = &mut self.regs {
            if regs.gdpr.is_none() {
                if let Some(v) = ext_field(&regs.ext, "gdpr").and_then(as_flag) {
                    regs.gdpr = Some(v);
                    lifted.push("regs.gdpr".to_string());
                }
            }
            if regs.us_privacy.is_none() {
                if let Some(v) = ext_field(&regs.ext, "us_privacy").and_then(as_string) {
                    regs.us_privacy = Some(v.into());
                    lifted.push("regs.us_privacy".to_string());
                }
            }
            if regs.gpp.is_none() {
                if let Some(v) = ext_field(&regs.ext, "gpp").and_then(as_string) {
                    regs.gpp = Some(v.into());
                    lifted.push("regs.gpp".to_string());
                }
            }
            if regs.gpp_sid.is_empty() {
                if let Some(Value::Array(items)) = ext_field(&regs.ext, "gpp_sid") {
                    let sids: Vec<i32> = items.iter().filter_map(as_flag).collect();
                    if !sids.is_empty() {
                        regs.gpp_sid = sids;
                        lifted.push("regs.gpp_sid".to_string());
                    }
                }
            }
        }

        if let Some(user) = &mut self.user {
            if user.consent.is_none() {
                if let Some(v) = ext_field(&user.ext, "consent").and_then(as_string) {
                    user.consent = Some(v.into());
                    lifted.push("user.consent".to_string());
                }
            }
            if user.eids.is_empty() {
                if let Some(v) = ext_field(&user.ext, "eids") {
                    if let Ok(eids) = Vec::<Eid>::deserialize(v) {
                        if !eids.is_empty() {
                            // Borrowed from `user.ext`, which stays as it was: copied out.
                            user.eids = eids.into_iter().map(Eid::into_owned).collect();
                            lifted.push("user.eids".to_string());
                        }
                    }
                }
            }
        }

        if let Some(source) = &mut self.source {
            if source.schain.is_none() {
                if let Some(v) = ext_field(&source.ext, "schain") {
                    if let Ok(schain) = SupplyChain::deserialize(v) {
                        source.schain = Some(schain.into_owned());
                        lifted.push("source.schain".to_string());
                    }
                }
            }
        }

        for (i, imp) in self.imp.iter_mut().enumerate() {
            if let Some(video) = &mut imp.video {
                if video.plcmt.is_none() {
                    if let Some(plcmt) = video.placement.and_then(plcmt_from_placement) {
                        video.plcmt = Some(plcmt);
                        lifted.push(format!("imp[{i}].video.plcmt"));
                    }
                }
                if video.protocols.is_empty() {
                    if let Some(p) = video.protocol {
                        video.protocols.push(p);
                        lifted.push(format!("imp[{i}].video.protocols"));
                    }
                }
            }
            if imp.rwdd.is_none() {
                let rewarded =
                    ext_field(&imp.ext, "prebid").and_then(|p| p.get("is_rewarded_inventory")).and_then(as_flag);
                if let Some(v) = rewarded {
                    imp.rwdd = Some(v);
                    lifted.push(format!("imp[{i}].rwdd"));
                }
            }
        }

        Normalized { lifted }
    }
}
