//! Integer enumerations of OpenRTB 2.6 and AdCOM 1.0, as open newtypes.
//!
//! The spec requires bidders to tolerate values they do not know (lists grow between
//! versions, and values of 500 and above are exchange specific), so each list is a newtype
//! over `i32` that accepts any integer, with named constants for the values the spec defines.
//! Deserialization is tolerant like the rest of the crate (`true` → 1, `"3"` → 3, `3.0` → 3).
//! `Display` writes the number.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

macro_rules! int_enum {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$cmeta:meta])* $const:ident = $value:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub i32);

        impl $name {
            $( $(#[$cmeta])* pub const $const: $name = $name($value); )*

            /// The values this list defines in the spec.
            pub const KNOWN: &'static [$name] = &[$($name::$const),*];

            /// Whether the spec defines this value (values it does not define are kept, not
            /// rejected).
            pub fn is_known(self) -> bool {
                Self::KNOWN.contains(&self)
            }

            /// The constant's name for a value the spec defines.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( v if v == $value => Some(stringify!($const)), )*
                    _ => None,
                }
            }
        }

        impl From<i32> for $name {
            fn from(v: i32) -> Self {
                $name(v)
            }
        }

        impl From<$name> for i32 {
            fn from(v: $name) -> i32 {
                v.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{}::{}({})", stringify!($name), n, self.0),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_i32(self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                crate::de::int(d).map($name)
            }
        }
    };
}

int_enum! {
    /// No-bid reason codes (`BidResponse.nbr`), OpenRTB 3.0 "List: No-Bid Reason Codes",
    /// referenced by OpenRTB 2.6. Values 500+ are exchange specific.
    pub struct NoBidReason {
        /// 0: Unknown Error.
        UNKNOWN_ERROR = 0,
        /// 1: Technical Error.
        TECHNICAL_ERROR = 1,
        /// 2: Invalid Request.
        INVALID_REQUEST = 2,
        /// 3: Known Web Crawler.
        KNOWN_WEB_CRAWLER = 3,
        /// 4: Suspected Non-Human Traffic.
        SUSPECTED_NON_HUMAN_TRAFFIC = 4,
        /// 5: Cloud, Data Center, or Proxy IP.
        CLOUD_DATACENTER_PROXY_IP = 5,
        /// 6: Unsupported Device.
        UNSUPPORTED_DEVICE = 6,
        /// 7: Blocked Publisher or Site.
        BLOCKED_PUBLISHER_OR_SITE = 7,
        /// 8: Unmatched User.
        UNMATCHED_USER = 8,
        /// 9: Daily User Cap Met.
        DAILY_USER_CAP_MET = 9,
        /// 10: Daily Domain Cap Met.
        DAILY_DOMAIN_CAP_MET = 10,
        /// 11: Ads.txt Authorization Unavailable.
        ADS_TXT_AUTHORIZATION_UNAVAILABLE = 11,
        /// 12: Ads.txt Authorization Violation.
        ADS_TXT_AUTHORIZATION_VIOLATION = 12,
        /// 13: Ads.cert Authentication Unavailable.
        ADS_CERT_AUTHENTICATION_UNAVAILABLE = 13,
        /// 14: Ads.cert Authentication Violation.
        ADS_CERT_AUTHENTICATION_VIOLATION = 14,
        /// 15: Insufficient Auction Time.
        INSUFFICIENT_AUCTION_TIME = 15,
        /// 16: Incomplete SupplyChain.
        INCOMPLETE_SUPPLY_CHAIN = 16,
        /// 17: Blocked SupplyChain Node.
        BLOCKED_SUPPLY_CHAIN_NODE = 17,
    }
}

int_enum! {
    /// Loss reason codes (the value of `${AUCTION_LOSS}` in a loss notice), OpenRTB 3.0
    /// "List: Loss Reason Codes". Values 1000+ are exchange specific.
    pub struct LossReason {
        BID_WON = 0,
        INTERNAL_ERROR = 1,
        IMPRESSION_OPPORTUNITY_EXPIRED = 2,
        INVALID_BID_RESPONSE = 3,
        INVALID_DEAL_ID = 4,
        INVALID_AUCTION_ID = 5,
        INVALID_ADVERTISER_DOMAIN = 6,
        MISSING_MARKUP = 7,
        MISSING_CREATIVE_ID = 8,
        MISSING_BID_PRICE = 9,
        MISSING_MINIMUM_CREATIVE_APPROVAL_DATA = 10,
        BELOW_AUCTION_FLOOR = 100,
        BELOW_DEAL_FLOOR = 101,
        LOST_TO_HIGHER_BID = 102,
        LOST_TO_DEAL_BID = 103,
        BUYER_SEAT_BLOCKED = 104,
        CREATIVE_FILTERED_GENERAL = 200,
        CREATIVE_FILTERED_PENDING = 201,
        CREATIVE_FILTERED_DISAPPROVED = 202,
        CREATIVE_FILTERED_SIZE_NOT_ALLOWED = 203,
        CREATIVE_FILTERED_INCORRECT_FORMAT = 204,
        CREATIVE_FILTERED_ADVERTISER_EXCLUSIONS = 205,
        CREATIVE_FILTERED_APP_STORE_ID_EXCLUSIONS = 206,
        CREATIVE_FILTERED_NOT_SECURE = 207,
        CREATIVE_FILTERED_LANGUAGE_EXCLUSIONS = 208,
        CREATIVE_FILTERED_CATEGORY_EXCLUSIONS = 209,
        CREATIVE_FILTERED_ATTRIBUTE_EXCLUSIONS = 210,
        CREATIVE_FILTERED_AD_TYPE_EXCLUSIONS = 211,
        CREATIVE_FILTERED_ANIMATION_TOO_LONG = 212,
    }
}

int_enum! {
    /// `BidRequest.at` / `Deal.at`: auction type. 500+ exchange specific.
    pub struct AuctionType {
        FIRST_PRICE = 1,
        SECOND_PRICE_PLUS = 2,
        /// Deal only: the value passed in `bidfloor` is the agreed fixed deal price.
        FIXED_PRICE = 3,
    }
}

int_enum! {
    /// `Bid.mtype`: type of the creative markup.
    pub struct MarkupType {
        BANNER = 1,
        VIDEO = 2,
        AUDIO = 3,
        NATIVE = 4,
    }
}

int_enum! {
    /// `Device.devicetype` (AdCOM 1.0 List: Device Types).
    pub struct DeviceType {
        MOBILE_TABLET = 1,
        PERSONAL_COMPUTER = 2,
        CONNECTED_TV = 3,
        PHONE = 4,
        TABLET = 5,
        CONNECTED_DEVICE = 6,
        SET_TOP_BOX = 7,
        OOH_DEVICE = 8,
    }
}

int_enum! {
    /// `Device.connectiontype` (AdCOM 1.0 List: Connection Types).
    pub struct ConnectionType {
        /// Not in AdCOM's list; sent by many exchanges for "unknown".
        UNKNOWN = 0,
        ETHERNET = 1,
        WIFI = 2,
        CELLULAR_UNKNOWN = 3,
        CELLULAR_2G = 4,
        CELLULAR_3G = 5,
        CELLULAR_4G = 6,
        CELLULAR_5G = 7,
    }
}

int_enum! {
    /// `Geo.type` (AdCOM 1.0 List: Location Types).
    pub struct LocationType {
        GPS = 1,
        IP_ADDRESS = 2,
        USER_PROVIDED = 3,
    }
}

int_enum! {
    /// Video/audio `protocols` (AdCOM 1.0 List: Creative Subtypes - Audio/Video).
    pub struct Protocol {
        VAST_1_0 = 1,
        VAST_2_0 = 2,
        VAST_3_0 = 3,
        VAST_1_0_WRAPPER = 4,
        VAST_2_0_WRAPPER = 5,
        VAST_3_0_WRAPPER = 6,
        VAST_4_0 = 7,
        VAST_4_0_WRAPPER = 8,
        DAAST_1_0 = 9,
        DAAST_1_0_WRAPPER = 10,
        VAST_4_1 = 11,
        VAST_4_1_WRAPPER = 12,
        VAST_4_2 = 13,
        VAST_4_2_WRAPPER = 14,
        VAST_4_3 = 15,
        VAST_4_3_WRAPPER = 16,
    }
}

int_enum! {
    /// `api` / `apis` (AdCOM 1.0 List: API Frameworks).
    pub struct ApiFramework {
        VPAID_1_0 = 1,
        VPAID_2_0 = 2,
        MRAID_1_0 = 3,
        ORMMA = 4,
        MRAID_2_0 = 5,
        MRAID_3_0 = 6,
        OMID_1_0 = 7,
        SIMID_1_0 = 8,
        SIMID_1_1 = 9,
    }
}

int_enum! {
    /// `battr` / `attr` (AdCOM 1.0 List: Creative Attributes).
    pub struct CreativeAttribute {
        AUDIO_AUTO_PLAY = 1,
        AUDIO_USER_INITIATED = 2,
        EXPANDABLE_AUTOMATIC = 3,
        EXPANDABLE_CLICK = 4,
        EXPANDABLE_ROLLOVER = 5,
        IN_BANNER_VIDEO_AUTO_PLAY = 6,
        IN_BANNER_VIDEO_USER_INITIATED = 7,
        POP = 8,
        PROVOCATIVE = 9,
        ANNOYING_ANIMATION = 10,
        SURVEYS = 11,
        TEXT_ONLY = 12,
        USER_INTERACTIVE = 13,
        ALERT_STYLE = 14,
        HAS_AUDIO_ON_OFF = 15,
        SKIPPABLE = 16,
        ADOBE_FLASH = 17,
        RESPONSIVE = 18,
    }
}

int_enum! {
    /// `Banner.btype` (OpenRTB 2.x List: Banner Ad Types): the types to block.
    pub struct BannerAdType {
        XHTML_TEXT = 1,
        XHTML_BANNER = 2,
        JAVASCRIPT = 3,
        IFRAME = 4,
    }
}

int_enum! {
    /// `pos` (AdCOM 1.0 List: Placement Positions).
    pub struct AdPosition {
        UNKNOWN = 0,
        ABOVE_THE_FOLD = 1,
        /// Locked (fixed position).
        LOCKED = 2,
        BELOW_THE_FOLD = 3,
        HEADER = 4,
        FOOTER = 5,
        SIDEBAR = 6,
        FULLSCREEN = 7,
        PARTIAL_SCREEN = 8,
        TOP_LEFT = 9,
        TOP_RIGHT = 10,
        FRAME_THE_CONTENT = 11,
        DOUBLE_BOX = 12,
        DOUBLE_BOX_WITH_BACKGROUND = 13,
        BOTTOM_LEFT = 14,
        BOTTOM_RIGHT = 15,
        L_SHAPE = 16,
        REVERSED_L_SHAPE = 17,
    }
}

int_enum! {
    /// `Banner.expdir` (AdCOM 1.0 List: Expandable Directions).
    pub struct ExpandableDirection {
        LEFT = 1,
        RIGHT = 2,
        UP = 3,
        DOWN = 4,
        FULL_SCREEN = 5,
        RESIZE_MINIMIZE = 6,
    }
}

int_enum! {
    /// `Video.plcmt` (OpenRTB 2.6 / AdCOM 1.0 List: Plcmt Subtypes - Video).
    pub struct Plcmt {
        INSTREAM = 1,
        ACCOMPANYING_CONTENT = 2,
        INTERSTITIAL = 3,
        NO_CONTENT_STANDALONE = 4,
        PAUSE = 5,
        SCREENSAVER = 6,
        OVERLAY = 7,
        SQUEEZEBACK = 8,
        IN_SCENE = 9,
    }
}

int_enum! {
    /// `Video.placement` (OpenRTB 2.5 List: Video Placement Types; deprecated in 2.6 in favour
    /// of [`Plcmt`]).
    pub struct VideoPlacement {
        IN_STREAM = 1,
        IN_BANNER = 2,
        IN_ARTICLE = 3,
        IN_FEED = 4,
        INTERSTITIAL_SLIDER_FLOATING = 5,
    }
}

int_enum! {
    /// `Video.linearity` (AdCOM 1.0 List: Linearity Modes).
    pub struct Linearity {
        LINEAR = 1,
        NON_LINEAR = 2,
    }
}

int_enum! {
    /// `startdelay` (AdCOM 1.0 List: Start Delay Modes). Any value above 0 is a mid-roll
    /// starting that many seconds in.
    pub struct StartDelay {
        PRE_ROLL = 0,
        GENERIC_MID_ROLL = -1,
        GENERIC_POST_ROLL = -2,
    }
}

int_enum! {
    /// `Video.playbackmethod` (AdCOM 1.0 List: Playback Methods).
    pub struct PlaybackMethod {
        PAGE_LOAD_SOUND_ON = 1,
        PAGE_LOAD_SOUND_OFF = 2,
        CLICK_SOUND_ON = 3,
        MOUSE_OVER_SOUND_ON = 4,
        VIEWPORT_SOUND_ON = 5,
        VIEWPORT_SOUND_OFF = 6,
        CONTINUOUS = 7,
    }
}

int_enum! {
    /// `delivery` (AdCOM 1.0 List: Delivery Methods).
    pub struct DeliveryMethod {
        STREAMING = 1,
        PROGRESSIVE = 2,
        DOWNLOAD = 3,
    }
}

int_enum! {
    /// `cattax` (AdCOM 1.0 List: Category Taxonomies). 500+ vendor specific. Default 1.
    pub struct CategoryTaxonomy {
        IAB_CONTENT_1_0 = 1,
        IAB_CONTENT_2_0 = 2,
        IAB_AD_PRODUCT_1_0 = 3,
        IAB_AUDIENCE_1_1 = 4,
        IAB_CONTENT_2_1 = 5,
        IAB_CONTENT_2_2 = 6,
        IAB_CONTENT_3_0 = 7,
        IAB_AD_PRODUCT_2_0 = 8,
        IAB_CONTENT_3_1 = 9,
    }
}

int_enum! {
    /// `UID.atype` (AdCOM 1.0 List: Agent Types). 500+ vendor specific.
    pub struct AgentType {
        /// An ID tied to a specific web browser or device (cookie-based, probabilistic, ...).
        BROWSER_OR_DEVICE = 1,
        /// In-app impressions, typically a (privacy-compliant) device ID.
        IN_APP = 2,
        /// A person-based ID, the same across devices.
        PERSON = 3,
    }
}
