//! What OpenRTB 2.6 requires of a bid request, checked before decisioning.

use crate::enums::NoBidReason;
use crate::price::MAX_PRICE_UNITS;
use crate::request::{Banner, BidRequest, Deal, Imp};
use std::collections::HashSet;
use std::fmt;

/// Why a bid request is invalid; [`ValidationReason::as_str`] is the stable machine-readable
/// code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValidationReason {
    /// `id` is missing or empty.
    MissingId,
    /// `imp` is missing or empty.
    NoImpressions,
    /// An `imp[].id` is missing or empty.
    MissingImpId,
    /// Two impressions share an `id`.
    DuplicateImpId,
    /// An impression has none of `banner`, `video`, `audio`, `native`.
    NoMediaObject,
    /// `video.mimes` is missing or empty.
    MissingVideoMimes,
    /// `audio.mimes` is missing or empty.
    MissingAudioMimes,
    /// `native.request` is missing or empty.
    MissingNativeRequest,
    /// A banner-only impression gives no usable size (see [`BidRequest::validate`]).
    MissingBannerSize,
    /// A `bidfloor` (impression or deal) is negative, not finite, or absurdly large.
    InvalidBidFloor,
    /// A `pmp.deals[].id` is missing or empty.
    MissingDealId,
    /// `tmax` is present but not positive.
    InvalidTmax,
    /// More than one of `site`, `app`, `dooh` is present.
    MultipleDistributionChannels,
}

impl ValidationReason {
    /// Stable machine-readable code (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationReason::MissingId => "missing_id",
            ValidationReason::NoImpressions => "no_impressions",
            ValidationReason::MissingImpId => "missing_imp_id",
            ValidationReason::DuplicateImpId => "duplicate_imp_id",
            ValidationReason::NoMediaObject => "no_media_object",
            ValidationReason::MissingVideoMimes => "missing_video_mimes",
            ValidationReason::MissingAudioMimes => "missing_audio_mimes",
            ValidationReason::MissingNativeRequest => "missing_native_request",
            ValidationReason::MissingBannerSize => "missing_banner_size",
            ValidationReason::InvalidBidFloor => "invalid_bidfloor",
            ValidationReason::MissingDealId => "missing_deal_id",
            ValidationReason::InvalidTmax => "invalid_tmax",
            ValidationReason::MultipleDistributionChannels => "multiple_distribution_channels",
        }
    }

    /// A one-line explanation for humans.
    pub fn message(self) -> &'static str {
        match self {
            ValidationReason::MissingId => "the request id is required",
            ValidationReason::NoImpressions => "at least one imp is required",
            ValidationReason::MissingImpId => "every imp needs an id",
            ValidationReason::DuplicateImpId => "imp ids must be unique within the request",
            ValidationReason::NoMediaObject => "an imp needs one of banner, video, audio or native",
            ValidationReason::MissingVideoMimes => "video.mimes must list at least one MIME type",
            ValidationReason::MissingAudioMimes => "audio.mimes must list at least one MIME type",
            ValidationReason::MissingNativeRequest => "native.request is required",
            ValidationReason::MissingBannerSize => "the banner gives no size (format, or w and h)",
            ValidationReason::InvalidBidFloor => "bidfloor must be a finite number from 0 to 10^9",
            ValidationReason::MissingDealId => "every deal needs an id",
            ValidationReason::InvalidTmax => "tmax must be positive",
            ValidationReason::MultipleDistributionChannels => "only one of site, app and dooh may be present",
        }
    }
}

impl fmt::Display for ValidationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that breaks a rule of [`BidRequest::validate`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid bid request: {path}: {} ({reason})", reason.message())]
pub struct ValidationError {
    /// Which rule.
    pub reason: ValidationReason,
    /// JSON path of the field at fault, e.g. `imp[1].video.mimes`.
    pub path: String,
    /// The no-bid reason to answer with: always [`NoBidReason::INVALID_REQUEST`] (2).
    pub nbr: NoBidReason,
}

impl ValidationError {
    fn new(reason: ValidationReason, path: impl Into<String>) -> ValidationError {
        ValidationError { reason, path: path.into(), nbr: NoBidReason::INVALID_REQUEST }
    }
}

fn floor_ok(floor: Option<f64>) -> bool {
    floor.is_none_or(|f| f.is_finite() && (0.0..=MAX_PRICE_UNITS as f64).contains(&f))
}

fn positive(v: Option<i32>) -> bool {
    v.is_some_and(|v| v > 0)
}

/// Lenient banner size rule: a non-empty `format` with at least one entry that has a size
/// (`w` and `h`, or `wratio` and `hratio`, above 0), or the banner's own `w` and `h`.
fn banner_has_size(banner: &Banner) -> bool {
    (positive(banner.w) && positive(banner.h))
        || banner.format.iter().any(|f| (positive(f.w) && positive(f.h)) || (positive(f.wratio) && positive(f.hratio)))
}

fn validate_imp(i: usize, imp: &Imp) -> Result<(), ValidationError> {
    if imp.id.is_empty() {
        return Err(ValidationError::new(ValidationReason::MissingImpId, format!("imp[{i}].id")));
    }
    let other_media = imp.video.is_some() || imp.audio.is_some() || imp.native.is_some();
    if imp.banner.is_none() && !other_media {
        return Err(ValidationError::new(ValidationReason::NoMediaObject, format!("imp[{i}]")));
    }
    if let Some(banner) = &imp.banner {
        // Only a banner-only, non-interstitial impression must give a size: an interstitial
        // fills the screen, and in a multi-format impression the other media can still bid.
        if !other_media && imp.instl != Some(1) && !banner_has_size(banner) {
            return Err(ValidationError::new(ValidationReason::MissingBannerSize, format!("imp[{i}].banner")));
        }
    }
    if let Some(video) = &imp.video {
        if video.mimes.iter().all(|m| m.is_empty()) {
            return Err(ValidationError::new(ValidationReason::MissingVideoMimes, format!("imp[{i}].video.mimes")));
        }
    }
    if let Some(audio) = &imp.audio {
        if audio.mimes.iter().all(|m| m.is_empty()) {
            return Err(ValidationError::new(ValidationReason::MissingAudioMimes, format!("imp[{i}].audio.mimes")));
        }
    }
    if let Some(native) = &imp.native {
        if native.request.trim().is_empty() {
            return Err(ValidationError::new(
                ValidationReason::MissingNativeRequest,
                format!("imp[{i}].native.request"),
            ));
        }
    }
    if !floor_ok(imp.bidfloor) {
        return Err(ValidationError::new(ValidationReason::InvalidBidFloor, format!("imp[{i}].bidfloor")));
    }
    if let Some(pmp) = &imp.pmp {
        for (j, deal) in pmp.deals.iter().enumerate() {
            validate_deal(i, j, deal)?;
        }
    }
    Ok(())
}

fn validate_deal(i: usize, j: usize, deal: &Deal) -> Result<(), ValidationError> {
    if deal.id.is_empty() {
        return Err(ValidationError::new(ValidationReason::MissingDealId, format!("imp[{i}].pmp.deals[{j}].id")));
    }
    if !floor_ok(deal.bidfloor) {
        return Err(ValidationError::new(
            ValidationReason::InvalidBidFloor,
            format!("imp[{i}].pmp.deals[{j}].bidfloor"),
        ));
    }
    Ok(())
}

impl BidRequest<'_> {
    /// Checks what the spec requires before a bid may be made; the first rule broken, in
    /// document order, is returned. Rules:
    ///
    /// - `id` is present and non-empty;
    /// - `imp` has at least one impression; each has a non-empty `id`, unique in the request,
    ///   and at least one of `banner`, `video`, `audio`, `native`;
    /// - `video.mimes` and `audio.mimes` list at least one non-empty MIME type;
    ///   `native.request` is non-empty;
    /// - a banner gives a size: `format` with at least one entry with `w`×`h` (or
    ///   `wratio`×`hratio`) above zero, or `w` and `h` above zero. Lenient: format entries
    ///   without a size are ignored rather than rejected, an interstitial (`instl` = 1) may
    ///   omit the size (it fills the screen), and in a multi-format impression (banner plus
    ///   video/audio/native) a sizeless banner is left for the bidder to skip rather than
    ///   failing the request;
    /// - `bidfloor` of impressions and deals, when present, is finite and within
    ///   0..=10^9 (so [`crate::price::price_to_micros`] cannot fail on it); deals have an `id`;
    /// - `tmax`, when present, is above zero;
    /// - at most one of `site`, `app`, `dooh` is present.
    ///
    /// Run [`BidRequest::normalize_2_5`] first: validation reads only 2.6 fields.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.id.is_empty() {
            return Err(ValidationError::new(ValidationReason::MissingId, "id"));
        }
        if self.imp.is_empty() {
            return Err(ValidationError::new(ValidationReason::NoImpressions, "imp"));
        }
        // Small requests (nearly all) compare ids pairwise; large ones use a set.
        let mut seen = if self.imp.len() > 16 { Some(HashSet::with_capacity(self.imp.len())) } else { None };
        for (i, imp) in self.imp.iter().enumerate() {
            validate_imp(i, imp)?;
            let duplicate = match &mut seen {
                Some(seen) => !seen.insert(&*imp.id),
                None => self.imp[..i].iter().any(|earlier| earlier.id == imp.id),
            };
            if duplicate {
                return Err(ValidationError::new(ValidationReason::DuplicateImpId, format!("imp[{i}].id")));
            }
        }
        if let Some(tmax) = self.tmax {
            if tmax <= 0 {
                return Err(ValidationError::new(ValidationReason::InvalidTmax, "tmax"));
            }
        }
        if self.site.is_some() && self.app.is_some() {
            return Err(ValidationError::new(ValidationReason::MultipleDistributionChannels, "app"));
        }
        if self.dooh.is_some() && (self.site.is_some() || self.app.is_some()) {
            return Err(ValidationError::new(ValidationReason::MultipleDistributionChannels, "dooh"));
        }
        Ok(())
    }
}
