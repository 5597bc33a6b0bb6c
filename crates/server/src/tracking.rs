//! tracking: signed, expiring, replay-safe tracking URLs. A URL carries the decision context
//! in `p` and a signature of it in `s` (HMAC-SHA256), made with the key named inside the
//! payload, so keys can rotate: new URLs use the active key, old URLs verify while their key is
//! still listed. The replay guard remembers each counted URL until it expires, so the same
//! impression or click is never counted twice.
//!
//! URLs that come in groups share one payload: a decision's impression and click trackers and a
//! bid's win, billing and loss notices. They are made in the binary v5 layout ([`v5`]: compact
//! ids, 128-bit signatures, the per-line-item part of the payload signed once per serving
//! thread); no URL of a group passes for another. Single URLs (`sign`) and the URLs of earlier
//! releases use the text layouts: base64url of a `|`-separated record, v2 and v3 (one kind per
//! URL) and v4 (tag `d`, the tracker pair, both costs; each signature over the payload, `|` and
//! its kind's tag). All of them verify.

use adp_domain::events::EventRef;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;

type HmacSha256 = Hmac<Sha256>;

mod v5;
pub use v5::Sig;

/// v3 added the deal id and currency (OpenRTB notices); v2 URLs (without them) still verify.
const FORMAT: &str = "v3";
const FIELDS: usize = 21;
const FIELDS_V2: usize = 19;
/// v4: the payload a decision's impression and click trackers share (tag [`TRACKERS_TAG`]); it
/// adds the click's cost after the impression's.
const FORMAT_V4: &str = "v4";
const FIELDS_V4: usize = 22;
/// The kind tag of a payload shared by a bid's win, billing and loss notices.
const NOTICE_TAG: &str = "n";
/// The kind tag of a payload shared by a decision's impression and click trackers.
const TRACKERS_TAG: &str = "d";
/// Longest `p` accepted: seven 128-byte ids, a 4 KiB landing URL and the numbers, in base64.
pub const MAX_PAYLOAD_LEN: usize = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackKind {
    Impression,
    Click,
    /// OpenRTB win notice (`nurl`).
    Win,
    /// OpenRTB billing notice (`burl`).
    Billing,
    /// OpenRTB loss notice (`lurl`).
    Loss,
}

impl TrackKind {
    fn tag(self) -> &'static str {
        match self {
            TrackKind::Impression => "i",
            TrackKind::Click => "c",
            TrackKind::Win => "w",
            TrackKind::Billing => "b",
            TrackKind::Loss => "l",
        }
    }

    /// The URL path (after `/v1/`) that counts this kind.
    pub fn path(self) -> &'static str {
        match self {
            TrackKind::Impression => "t/imp",
            TrackKind::Click => "t/click",
            TrackKind::Win => "rtb/win",
            TrackKind::Billing => "rtb/bill",
            TrackKind::Loss => "rtb/loss",
        }
    }

    fn from_tag(tag: &str) -> Option<TrackKind> {
        Some(match tag {
            "i" => TrackKind::Impression,
            "c" => TrackKind::Click,
            "w" => TrackKind::Win,
            "b" => TrackKind::Billing,
            "l" => TrackKind::Loss,
            _ => return None,
        })
    }
}

/// The decision context a tracking URL carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackedAd {
    pub kind: TrackKind,
    pub key_id: String,
    /// Unix seconds after which the URL is refused.
    pub expires_at: i64,
    pub request_id: String,
    /// Server-made id of this ad decision (`d…`, or `t…` for test requests).
    pub decision_id: String,
    /// The placement's position in the request (one request, several placements).
    pub slot: u32,
    pub advertiser_id: String,
    pub campaign_id: String,
    pub line_item_id: String,
    pub creative_id: String,
    pub publisher_id: String,
    pub site_id: String,
    pub placement_id: String,
    pub user_key: u64,
    pub price_micros: i64,
    /// For impressions: budget spend per impression; for clicks: the cost per click.
    pub cost_micros: i64,
    pub pending_minute: i64,
    /// OpenRTB: the deal the bid was for (empty: open auction).
    pub deal_id: String,
    /// OpenRTB: the currency of the bid and of the exchange's `${AUCTION_PRICE}` (empty: the
    /// platform currency).
    pub currency: String,
    /// For clicks: where to send the user.
    pub landing_url: String,
}

/// What a tracking URL carries, borrowed: what signing reads (`TrackedAd` owns the same fields,
/// as verified). The serving path signs from the snapshot's strings without copying them.
#[derive(Clone, Copy, Debug)]
pub struct TrackedFields<'a> {
    pub expires_at: i64,
    pub request_id: &'a str,
    pub decision_id: &'a str,
    pub slot: u32,
    pub advertiser_id: &'a str,
    pub campaign_id: &'a str,
    pub line_item_id: &'a str,
    pub creative_id: &'a str,
    pub publisher_id: &'a str,
    pub site_id: &'a str,
    pub placement_id: &'a str,
    pub user_key: u64,
    pub price_micros: i64,
    pub cost_micros: i64,
    pub pending_minute: i64,
    pub deal_id: &'a str,
    pub currency: &'a str,
    pub landing_url: &'a str,
}

impl<'a> TrackedFields<'a> {
    /// Advertiser, campaign, line item, creative, publisher, site and placement ids, in the
    /// order every payload layout carries them.
    pub fn entity_ids(&self) -> [&'a str; 7] {
        [
            self.advertiser_id,
            self.campaign_id,
            self.line_item_id,
            self.creative_id,
            self.publisher_id,
            self.site_id,
            self.placement_id,
        ]
    }
}

impl TrackedAd {
    /// The event of this URL being counted as `kind` at `now_ms` (received at `received_ms`):
    /// every id it carries, its price and cost, no deal, currency or reason (callers add those).
    pub fn event(&self, kind: adp_domain::events::EventKind, now_ms: i64, received_ms: i64) -> EventRef<'_> {
        EventRef {
            id: crate::serving::new_event_id(now_ms),
            kind,
            event_time_ms: now_ms,
            receive_time_ms: received_ms,
            request_id: &self.request_id,
            decision_id: &self.decision_id,
            advertiser_id: &self.advertiser_id,
            campaign_id: &self.campaign_id,
            line_item_id: &self.line_item_id,
            creative_id: &self.creative_id,
            publisher_id: &self.publisher_id,
            site_id: &self.site_id,
            placement_id: &self.placement_id,
            user_key: self.user_key,
            price_micros: self.price_micros,
            cost_micros: self.cost_micros,
            ..EventRef::default()
        }
    }

    pub fn fields(&self) -> TrackedFields<'_> {
        TrackedFields {
            expires_at: self.expires_at,
            request_id: &self.request_id,
            decision_id: &self.decision_id,
            slot: self.slot,
            advertiser_id: &self.advertiser_id,
            campaign_id: &self.campaign_id,
            line_item_id: &self.line_item_id,
            creative_id: &self.creative_id,
            publisher_id: &self.publisher_id,
            site_id: &self.site_id,
            placement_id: &self.placement_id,
            user_key: self.user_key,
            price_micros: self.price_micros,
            cost_micros: self.cost_micros,
            pending_minute: self.pending_minute,
            deal_id: &self.deal_id,
            currency: &self.currency,
            landing_url: &self.landing_url,
        }
    }
}

/// A new decision id: `d` (or `t` for a test request) and a UUIDv7 in 32 hex digits. Made by
/// the server and signed into the tracking URLs, it keys the replay guard.
pub fn decision_id(test: bool, now_ms: i64) -> String {
    let mut id = String::with_capacity(33);
    id.push(if test { 't' } else { 'd' });
    id.push_str(crate::ids::v7(now_ms).simple().encode_lower(&mut uuid::Uuid::encode_buffer()));
    id
}

thread_local! {
    /// The record being encoded (reused: one per serving thread).
    static RECORD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackError {
    Malformed,
    UnknownKey,
    BadSignature,
    WrongKind,
    /// A notice signature that matches neither this notice kind nor the payload.
    WrongKindOrSignature,
    Expired,
}

impl TrackError {
    pub fn code(self) -> &'static str {
        match self {
            TrackError::Malformed => "malformed_tracking_url",
            TrackError::UnknownKey => "unknown_signing_key",
            TrackError::BadSignature => "invalid_signature",
            TrackError::WrongKind => "wrong_tracking_kind",
            TrackError::WrongKindOrSignature => "invalid_signature",
            TrackError::Expired => "expired",
        }
    }
}

/// Signing keys by id; one is active for new URLs. Each key's HMAC state is keyed once and
/// cloned per URL (keying costs two SHA-256 blocks).
#[derive(Clone)]
pub struct UrlSigner {
    /// Unique per `new` (clones share it): keys the per-thread cache of signed v5 prefixes.
    id: u64,
    active: String,
    keys: HashMap<String, HmacSha256>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner").field("active", &self.active).field("keys", &self.keys.len()).finish()
    }
}

impl UrlSigner {
    /// `keys` are `(id, secret)`; the first is active. Ids are 1–16 letters or digits.
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> Result<UrlSigner, String> {
        let active = keys.first().map(|(id, _)| id.clone()).ok_or("at least one signing key is needed")?;
        for (id, secret) in &keys {
            if id.is_empty() || id.len() > 16 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("signing key id `{id}` must be 1 to 16 letters or digits"));
            }
            if secret.len() < 16 {
                return Err(format!("signing key `{id}` must be at least 16 bytes"));
            }
        }
        let mut keyed = HashMap::new();
        for (id, secret) in keys {
            let mac = HmacSha256::new_from_slice(&secret).map_err(|e| format!("signing key `{id}`: {e}"))?;
            keyed.insert(id, mac);
        }
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(UrlSigner { id, active, keys: keyed })
    }

    fn mac(&self, key_id: &str, payload: &str) -> Option<HmacSha256> {
        let mut mac = self.keys.get(key_id)?.clone();
        mac.update(payload.as_bytes());
        Some(mac)
    }

    /// The query string (`p=...&s=...`) of a tracking URL for `ad`, signed with the active key.
    pub fn sign(&self, ad: &TrackedAd) -> String {
        let mut out = String::new();
        self.append_query(ad.kind, &ad.fields(), "&", &mut out);
        out
    }

    /// Appends `p=<payload>{sep}s=<signature>` for a `kind` URL to `out` (`sep` is `&`, or
    /// `&amp;` inside HTML) and returns where `sep` starts. One pass, no intermediate strings.
    pub fn append_query(&self, kind: TrackKind, ad: &TrackedFields<'_>, sep: &str, out: &mut String) -> usize {
        out.push_str("p=");
        let p = out.len();
        self.append_payload(ad, kind.tag(), out);
        let mac = self.mac(&self.active, &out[p..]);
        let at = out.len();
        out.push_str(sep);
        out.push_str("s=");
        if let Some(m) = mac {
            URL_SAFE_NO_PAD.encode_string(m.finalize().into_bytes(), out);
        }
        at
    }

    /// One payload for the impression and click trackers of a decision (v5), and a signature
    /// for each (impression, click): the two halves of one HMAC of the payload. The payload is
    /// encoded and hashed once, its per-line-item prefix only when this thread has not signed it
    /// lately. `ad.cost_micros` is the
    /// impression's cost, `click_cost` the click's, `ad.landing_url` the click's landing page.
    pub fn sign_trackers(&self, ad: &TrackedFields<'_>, click_cost: i64, out: &mut String) -> [Sig; 2] {
        let Some(mac) = self.append_v5(v5::GROUP_TRACKERS, ad, &[ad.cost_micros, click_cost], out) else {
            return Default::default();
        };
        Self::tracker_sigs_v5(mac)
    }

    /// One payload (v5) for the win, billing and loss notices of a bid, and a signature for each
    /// (in that order).
    pub fn sign_notices(&self, ad: &TrackedFields<'_>) -> (String, [Sig; 3]) {
        let mut p = String::new();
        let Some(mac) = self.append_v5(v5::GROUP_NOTICES, ad, &[ad.cost_micros], &mut p) else {
            return (p, Default::default());
        };
        let sigs = [TrackKind::Win, TrackKind::Billing, TrackKind::Loss].map(|kind| Self::sig_v5(&mac, kind));
        (p, sigs)
    }

    /// The v4 tracker pair (text, before v5), for the tests that hold old URLs verifying.
    #[cfg(test)]
    fn sign_trackers_v4(&self, ad: &TrackedFields<'_>, click_cost: i64, out: &mut String) -> [String; 2] {
        self.append_payload_v(ad, TRACKERS_TAG, Some(click_cost), out);
        let Some(base) = self.mac(&self.active, out) else { return Default::default() };
        [TrackKind::Impression, TrackKind::Click].map(|kind| {
            let mut m = base.clone();
            m.update(b"|");
            m.update(kind.tag().as_bytes());
            URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
        })
    }

    /// Appends the base64url of the `|`-separated record to `out`.
    fn append_payload(&self, ad: &TrackedFields<'_>, tag: &str, out: &mut String) {
        self.append_payload_v(ad, tag, None, out);
    }

    /// [`Self::append_payload`]; with a click cost, in the v4 layout that carries it.
    fn append_payload_v(&self, ad: &TrackedFields<'_>, tag: &str, click_cost: Option<i64>, out: &mut String) {
        RECORD.with_borrow_mut(|rec| {
            rec.clear();
            let mut num = itoa::Buffer::new();
            let field = |rec: &mut Vec<u8>, v: &[u8]| {
                rec.extend_from_slice(v);
                rec.push(b'|');
            };
            field(rec, if click_cost.is_some() { FORMAT_V4 } else { FORMAT }.as_bytes());
            field(rec, tag.as_bytes());
            field(rec, self.active.as_bytes());
            field(rec, num.format(ad.expires_at).as_bytes());
            field(rec, ad.request_id.as_bytes());
            field(rec, ad.decision_id.as_bytes());
            field(rec, num.format(ad.slot).as_bytes());
            for v in ad.entity_ids() {
                field(rec, v.as_bytes());
            }
            field(rec, num.format(ad.user_key).as_bytes());
            field(rec, num.format(ad.price_micros).as_bytes());
            field(rec, num.format(ad.cost_micros).as_bytes());
            if let Some(click_cost) = click_cost {
                field(rec, num.format(click_cost).as_bytes());
            }
            field(rec, num.format(ad.pending_minute).as_bytes());
            field(rec, ad.deal_id.as_bytes());
            field(rec, ad.currency.as_bytes());
            rec.extend_from_slice(ad.landing_url.as_bytes());
            out.reserve(rec.len().div_ceil(3) * 4 + 48);
            URL_SAFE_NO_PAD.encode_string(&*rec, out);
        });
    }

    /// Checks a URL's `p` and `s` and returns what it carries.
    pub fn verify(&self, kind: TrackKind, p: &str, s: &str, now_secs: i64) -> Result<TrackedAd, TrackError> {
        if p.len() > MAX_PAYLOAD_LEN || s.len() > 64 {
            return Err(TrackError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD.decode(p).map_err(|_| TrackError::Malformed)?;
        if raw.first() == Some(&v5::VERSION) {
            return self.verify_v5(kind, &raw, s, now_secs);
        }
        let record = String::from_utf8(raw).map_err(|_| TrackError::Malformed)?;
        let (fields, v3) = match record.get(..2) {
            Some("v4") => (FIELDS_V4, true),
            Some("v3") => (FIELDS, true),
            Some("v2") => (FIELDS_V2, false),
            _ => return Err(TrackError::Malformed),
        };
        let mut f: Vec<&str> = record.splitn(fields, '|').collect();
        if f.len() != fields {
            return Err(TrackError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| TrackError::BadSignature)?;
        let mut mac = self.mac(f[2], p).ok_or(TrackError::UnknownKey)?;
        if fields == FIELDS_V4 {
            // The impression's cost, then the click's: keep the one of this kind where v3 has
            // its only cost, and the v3 layout follows.
            let click_cost = f.remove(17);
            if kind == TrackKind::Click {
                f[16] = click_cost;
            }
        }
        if f[1] == NOTICE_TAG || f[1] == TRACKERS_TAG {
            // One payload for a bid's win, billing and loss notices, or for a decision's
            // impression and click trackers; each signature covers the payload and the kind, so
            // one URL cannot pass for another.
            let fits = if f[1] == NOTICE_TAG {
                matches!(kind, TrackKind::Win | TrackKind::Billing | TrackKind::Loss)
            } else {
                fields == FIELDS_V4 && matches!(kind, TrackKind::Impression | TrackKind::Click)
            };
            if !fits {
                return Err(TrackError::WrongKind);
            }
            mac.update(b"|");
            mac.update(kind.tag().as_bytes());
            mac.verify_slice(&sig).map_err(|_| TrackError::WrongKindOrSignature)?;
        } else {
            mac.verify_slice(&sig).map_err(|_| TrackError::BadSignature)?;
            let kind_seen = TrackKind::from_tag(f[1]).ok_or(TrackError::Malformed)?;
            if kind_seen != kind {
                return Err(TrackError::WrongKind);
            }
        }
        let num = |s: &str| s.parse::<i64>().map_err(|_| TrackError::Malformed);
        let ad = TrackedAd {
            kind,
            key_id: f[2].to_string(),
            expires_at: num(f[3])?,
            request_id: f[4].to_string(),
            decision_id: f[5].to_string(),
            slot: f[6].parse().map_err(|_| TrackError::Malformed)?,
            advertiser_id: f[7].to_string(),
            campaign_id: f[8].to_string(),
            line_item_id: f[9].to_string(),
            creative_id: f[10].to_string(),
            publisher_id: f[11].to_string(),
            site_id: f[12].to_string(),
            placement_id: f[13].to_string(),
            user_key: f[14].parse().map_err(|_| TrackError::Malformed)?,
            price_micros: num(f[15])?,
            cost_micros: num(f[16])?,
            pending_minute: num(f[17])?,
            deal_id: if v3 { f[18].to_string() } else { String::new() },
            currency: if v3 { f[19].to_string() } else { String::new() },
            landing_url: f[f.len() - 1].to_string(),
        };
        if now_secs > ad.expires_at {
            return Err(TrackError::Expired);
        }
        Ok(ad)
    }
}

/// Why the replay guard refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// This URL was already counted.
    Seen,
    /// The guard is full of unexpired entries; counting now could not be made exact.
    Full,
}

/// Remembers counted URLs until they expire. Sharded; bounded in memory: it holds
/// `capacity` entries, so it sustains `capacity / tracking_ttl_secs` counted events per second.
pub struct ReplayGuard {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    seen: HashMap<u128, i64>,
    /// When expired entries were last swept out (a full sweep is O(entries); at most once a second).
    last_sweep: i64,
}

impl ReplayGuard {
    pub fn new(capacity: usize, shards: usize) -> ReplayGuard {
        let shards = shards.max(1);
        ReplayGuard {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: (capacity / shards).max(1),
        }
    }

    /// The key of one counted event: its kind and the server-made decision id.
    pub fn key(ad: &TrackedAd) -> u128 {
        Self::key_of(ad.kind, &ad.decision_id)
    }

    pub fn key_of(kind: TrackKind, decision_id: &str) -> u128 {
        let h = adp_engine::snapshot::stable_hash(&[kind.tag(), decision_id]);
        let g = adp_engine::snapshot::stable_hash(&[decision_id, kind.tag(), "replay"]);
        (u128::from(h) << 64) | u128::from(g)
    }

    /// Records `key` until `expires_at`; refuses a key already recorded.
    pub fn insert(&self, key: u128, expires_at: i64, now_secs: i64) -> Result<(), ReplayError> {
        let shard = &self.shards[(key as usize) % self.shards.len()];
        let mut shard = match shard.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(exp) = shard.seen.get(&key) {
            if *exp >= now_secs {
                return Err(ReplayError::Seen);
            }
        }
        if shard.seen.len() >= self.per_shard {
            if shard.last_sweep >= now_secs {
                return Err(ReplayError::Full);
            }
            shard.last_sweep = now_secs;
            shard.seen.retain(|_, exp| *exp >= now_secs);
            if shard.seen.len() >= self.per_shard {
                return Err(ReplayError::Full);
            }
        }
        shard.seen.insert(key, expires_at);
        Ok(())
    }

    /// Forgets `key` (when counting failed after the guard took it).
    pub fn remove(&self, key: u128) {
        let shard = &self.shards[(key as usize) % self.shards.len()];
        match shard.lock() {
            Ok(mut m) => m.seen.remove(&key),
            Err(p) => p.into_inner().seen.remove(&key),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(kind: TrackKind) -> TrackedAd {
        TrackedAd {
            kind,
            key_id: String::new(),
            expires_at: 2_000,
            request_id: "r1".into(),
            decision_id: "d0192".into(),
            slot: 0,
            advertiser_id: "a".into(),
            campaign_id: "c".into(),
            line_item_id: "li".into(),
            creative_id: "cr".into(),
            publisher_id: "p".into(),
            site_id: "s".into(),
            placement_id: "pl".into(),
            user_key: 42,
            price_micros: 2_500_000,
            cost_micros: 2_500,
            pending_minute: 20,
            deal_id: "D-1".into(),
            currency: "EUR".into(),
            landing_url: "https://x.example/a?b=c|d".into(),
        }
    }

    fn parts(q: &str) -> (String, String) {
        let mut p = String::new();
        let mut s = String::new();
        for kv in q.split('&') {
            if let Some(v) = kv.strip_prefix("p=") {
                p = v.into();
            } else if let Some(v) = kv.strip_prefix("s=") {
                s = v.into();
            }
        }
        (p, s)
    }

    #[test]
    fn the_one_pass_url_writer_agrees_with_the_parts_and_verifies_in_html() {
        let s = signer();
        let a = ad(TrackKind::Click);
        let (p, sig) = parts(&s.sign(&a));
        let mut html = String::from("?");
        let at = s.append_query(TrackKind::Click, &a.fields(), "&amp;", &mut html);
        assert_eq!(&html[at..at + 5], "&amp;");
        assert_eq!(html, format!("?p={p}&amp;s={sig}"));
        let back = s.verify(TrackKind::Click, &p, &sig, 0).expect("verifies");
        assert_eq!(back, TrackedAd { key_id: "k2".into(), ..a });
    }

    fn signer() -> UrlSigner {
        UrlSigner::new(vec![
            ("k2".into(), b"second-secret-0123456789".to_vec()),
            ("k1".into(), b"first-secret-0123456789".to_vec()),
        ])
        .expect("keys")
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let s = signer();
        let (p, sig) = parts(&s.sign(&ad(TrackKind::Click)));
        let got = s.verify(TrackKind::Click, &p, &sig, 1_000).expect("valid");
        assert_eq!(got.landing_url, "https://x.example/a?b=c|d");
        assert_eq!((got.key_id.as_str(), got.cost_micros), ("k2", 2_500));
        assert_eq!(s.verify(TrackKind::Impression, &p, &sig, 1_000), Err(TrackError::WrongKind));
        assert_eq!(s.verify(TrackKind::Click, &p, &sig, 2_001), Err(TrackError::Expired));
        let mut tampered = ad(TrackKind::Click);
        tampered.price_micros = 1;
        let (p2, _) = parts(&s.sign(&tampered));
        assert_eq!(s.verify(TrackKind::Click, &p2, &sig, 1_000), Err(TrackError::BadSignature));
        assert_eq!(s.verify(TrackKind::Click, "!!", &sig, 1_000), Err(TrackError::Malformed));
    }

    #[test]
    fn notices_carry_deal_and_currency_and_v2_urls_still_verify() {
        let s = signer();
        let (p, sig) = parts(&s.sign(&ad(TrackKind::Billing)));
        let got = s.verify(TrackKind::Billing, &p, &sig, 1_000).expect("valid");
        assert_eq!((got.deal_id.as_str(), got.currency.as_str()), ("D-1", "EUR"));
        assert_eq!(s.verify(TrackKind::Win, &p, &sig, 1_000), Err(TrackError::WrongKind));
        // A URL made by the previous release (v2: no deal, no currency) still counts.
        let v2 = "v2|i|k2|2000|r1|d0192|0|a|c|li|cr|p|s|pl|42|2500000|2500|20|";
        let p2 = URL_SAFE_NO_PAD.encode(v2);
        let sig2 = s.mac("k2", &p2).map(|m| URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())).expect("key");
        let got = s.verify(TrackKind::Impression, &p2, &sig2, 1_000).expect("v2 verifies");
        assert_eq!((got.line_item_id.as_str(), got.cost_micros, got.deal_id.as_str()), ("li", 2_500, ""));
    }

    #[test]
    fn one_notice_payload_serves_win_billing_and_loss_but_never_crosses_kinds() {
        let s = signer();
        let (p, [win, bill, loss]) = s.sign_notices(&ad(TrackKind::Win).fields());
        assert_eq!(s.verify(TrackKind::Win, &p, &win, 1_000).map(|a| a.kind), Ok(TrackKind::Win));
        assert_eq!(s.verify(TrackKind::Billing, &p, &bill, 1_000).map(|a| a.kind), Ok(TrackKind::Billing));
        assert_eq!(s.verify(TrackKind::Loss, &p, &loss, 1_000).map(|a| a.kind), Ok(TrackKind::Loss));
        // The win signature does not make a billing notice, nor an impression.
        assert_eq!(s.verify(TrackKind::Billing, &p, &win, 1_000), Err(TrackError::WrongKindOrSignature));
        assert_eq!(s.verify(TrackKind::Impression, &p, &win, 1_000), Err(TrackError::WrongKind));
        // Replay guard keys differ per kind, so a win and its billing are each counted once.
        let w = s.verify(TrackKind::Win, &p, &win, 1_000).expect("win");
        let b = s.verify(TrackKind::Billing, &p, &bill, 1_000).expect("bill");
        assert_ne!(ReplayGuard::key(&w), ReplayGuard::key(&b));
    }

    #[test]
    fn one_tracker_payload_serves_impression_and_click_with_their_own_costs() {
        let s = signer();
        let a = ad(TrackKind::Impression);
        let mut p = String::new();
        let [imp, click] = s.sign_trackers(&a.fields(), 400_000, &mut p);
        assert_eq!((imp.len(), click.len()), (22, 22), "128-bit signatures");
        let i = s.verify(TrackKind::Impression, &p, &imp, 1_000).expect("impression");
        let c = s.verify(TrackKind::Click, &p, &click, 1_000).expect("click");
        // Everything else as signed; each kind gets its own cost.
        assert_eq!(i, TrackedAd { key_id: "k2".into(), ..a.clone() });
        assert_eq!(c, TrackedAd { kind: TrackKind::Click, key_id: "k2".into(), cost_micros: 400_000, ..a.clone() });
        // The impression's signature does not make a click, nor a notice, nor the other way round.
        assert_eq!(s.verify(TrackKind::Click, &p, &imp, 1_000), Err(TrackError::WrongKindOrSignature));
        assert_eq!(s.verify(TrackKind::Impression, &p, &click, 1_000), Err(TrackError::WrongKindOrSignature));
        assert_eq!(s.verify(TrackKind::Billing, &p, &imp, 1_000), Err(TrackError::WrongKind));
        assert_ne!(ReplayGuard::key(&i), ReplayGuard::key(&c));
        // A changed byte anywhere (a cost, an id, the landing page) breaks both signatures; a
        // changed length does not parse; an expired pair is refused.
        let raw = URL_SAFE_NO_PAD.decode(&p).expect("base64");
        assert_eq!(&raw[..5], &[5, b'd', 2, b'k', b'2']);
        for at in 5..raw.len() {
            let mut forged = raw.clone();
            forged[at] ^= 0x01;
            let forged = URL_SAFE_NO_PAD.encode(&forged);
            for (kind, sig) in [(TrackKind::Impression, &imp), (TrackKind::Click, &click)] {
                let got = s.verify(kind, &forged, sig, 1_000);
                assert!(
                    matches!(
                        got,
                        Err(TrackError::WrongKindOrSignature | TrackError::Malformed | TrackError::UnknownKey)
                    ),
                    "byte {at} flipped: {got:?}"
                );
            }
        }
        let cut = URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]);
        assert_eq!(s.verify(TrackKind::Click, &cut, &click, 1_000), Err(TrackError::Malformed));
        assert_eq!(s.verify(TrackKind::Impression, &p, &imp, 2_001), Err(TrackError::Expired));
        // A signature cut short (or padded out) is refused, not compared on fewer bytes.
        assert_eq!(s.verify(TrackKind::Impression, &p, &imp[..21], 1_000), Err(TrackError::BadSignature));
        // The same ad signed again (its prefix now cached) gives the same URLs.
        let mut again = String::new();
        assert_eq!(s.sign_trackers(&a.fields(), 400_000, &mut again), [imp, click]);
        assert_eq!(again, p);
        // Another signer with the same key id but another secret does not reuse the cache.
        let other = UrlSigner::new(vec![("k2".into(), b"another-secret-0123456789".to_vec())]).expect("keys");
        let mut q = String::new();
        let [imp2, _] = other.sign_trackers(&a.fields(), 400_000, &mut q);
        assert_eq!(q, p, "same payload");
        assert_ne!(imp2, imp, "other key, other signature");
        assert!(other.verify(TrackKind::Impression, &q, &imp2, 1_000).is_ok());
        assert_eq!(s.verify(TrackKind::Impression, &q, &imp2, 1_000), Err(TrackError::WrongKindOrSignature));
    }

    #[test]
    fn v5_payloads_are_shorter_and_v4_urls_still_verify() {
        let s = signer();
        let mut a = ad(TrackKind::Impression);
        a.request_id = "01a220bfdbd87000a04ed13adb7c26c0".into();
        a.decision_id = "d01a220bfdbd87000a04ed13adb7c26c0".into();
        let (mut p5, mut p4) = (String::new(), String::new());
        s.sign_trackers(&a.fields(), 400_000, &mut p5);
        let [imp4, click4] = s.sign_trackers_v4(&a.fields(), 400_000, &mut p4);
        assert!(p5.len() * 4 < p4.len() * 3, "v5 {} bytes, v4 {}", p5.len(), p4.len());
        // A v4 pair made before v5 still counts, each kind with its cost.
        let c = s.verify(TrackKind::Click, &p4, &click4, 1_000).expect("v4 click");
        assert_eq!(c, TrackedAd { kind: TrackKind::Click, key_id: "k2".into(), cost_micros: 400_000, ..a.clone() });
        let i = s.verify(TrackKind::Impression, &p4, &imp4, 1_000).expect("v4 impression");
        assert_eq!(i, TrackedAd { key_id: "k2".into(), ..a });
        assert_eq!(s.verify(TrackKind::Click, &p4, &imp4, 1_000), Err(TrackError::WrongKindOrSignature));
    }

    proptest::proptest! {
        /// Whatever the strings and numbers, a v5 payload gives back exactly what was signed.
        #[test]
        fn v5_round_trips_any_fields(
            ids in proptest::collection::vec("[a-z0-9|é-]{0,40}", 12),
            hex in "[0-9a-f]{32}",
            nums in proptest::collection::vec(proptest::num::i64::ANY, 5),
            slot in proptest::num::u32::ANY,
            user_key in proptest::num::u64::ANY,
            notices in proptest::bool::ANY,
        ) {
            let s = signer();
            let decision = format!("d{hex}");
            let a = TrackedAd {
                kind: if notices { TrackKind::Loss } else { TrackKind::Click },
                key_id: "k2".into(),
                expires_at: nums[0],
                request_id: if slot % 2 == 0 { hex.clone() } else { ids[10].clone() },
                decision_id: if slot % 3 == 0 { decision } else { ids[11].clone() },
                slot,
                advertiser_id: ids[0].clone(),
                campaign_id: ids[1].clone(),
                line_item_id: ids[2].clone(),
                creative_id: ids[3].clone(),
                publisher_id: ids[4].clone(),
                site_id: ids[5].clone(),
                placement_id: ids[6].clone(),
                user_key,
                price_micros: nums[1],
                cost_micros: nums[2],
                pending_minute: nums[3],
                deal_id: ids[7].clone(),
                currency: ids[8].clone(),
                landing_url: ids[9].clone(),
            };
            let now = a.expires_at.saturating_sub(1);
            if notices {
                let (p, [_, _, loss]) = s.sign_notices(&a.fields());
                proptest::prop_assert_eq!(s.verify(TrackKind::Loss, &p, &loss, now), Ok(a));
            } else {
                let mut p = String::new();
                let [_, click] = s.sign_trackers(&a.fields(), nums[4], &mut p);
                let want = TrackedAd { cost_micros: nums[4], ..a };
                proptest::prop_assert_eq!(s.verify(TrackKind::Click, &p, &click, now), Ok(want));
            }
        }
    }

    #[test]
    fn rotated_keys_still_verify_until_removed() {
        let old = UrlSigner::new(vec![("k1".into(), b"first-secret-0123456789".to_vec())]).expect("keys");
        let (p, sig) = parts(&old.sign(&ad(TrackKind::Impression)));
        assert!(signer().verify(TrackKind::Impression, &p, &sig, 0).is_ok(), "k1 is still listed");
        let only_new = UrlSigner::new(vec![("k2".into(), b"second-secret-0123456789".to_vec())]).expect("keys");
        assert_eq!(only_new.verify(TrackKind::Impression, &p, &sig, 0), Err(TrackError::UnknownKey));
    }

    #[test]
    fn replay_guard_refuses_seen_and_reclaims_expired() {
        let g = ReplayGuard::new(2, 1);
        assert_eq!(g.insert(1, 100, 0), Ok(()));
        assert_eq!(g.insert(1, 100, 50), Err(ReplayError::Seen));
        assert_eq!(g.insert(2, 10, 0), Ok(()));
        assert_eq!(g.insert(3, 100, 5), Err(ReplayError::Full));
        assert_eq!(g.insert(3, 100, 11), Ok(()), "expired entries make room");
        g.remove(3);
        assert_eq!(g.insert(3, 100, 12), Ok(()));
    }
}
