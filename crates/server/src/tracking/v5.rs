//! v5: the binary payload of grouped tracking URLs (a decision's impression and click trackers,
//! a bid's win, billing and loss notices), and a per-thread cache of its signed prefix.
//!
//! # Layout (then base64url, no padding)
//!
//! ```text
//! prefix   0x05, group (b'd' trackers | b'n' notices), key id (u8 length + bytes),
//!          advertiser, campaign, line item, creative, publisher, site, placement, deal,
//!          currency, landing URL (each a LEB128 length + UTF-8 bytes),
//!          pad count p (0..=2) and p zero bytes, so that the prefix is a multiple of 3 bytes
//! suffix   expires_at (zigzag LEB128, Unix seconds), request id, decision id (compact ids),
//!          slot (LEB128), user key (8 bytes LE), price, then the costs — two for trackers
//!          (impression, click), one for notices — and the pending minute (zigzag LEB128 each)
//! ```
//!
//! A compact id is `0x01` + 16 bytes (32 lowercase hex digits), `0x02` + one ASCII letter +
//! 16 bytes (a letter then 32 lowercase hex digits: the decision ids), or `0x00` + LEB128 length
//! + UTF-8 bytes (anything else); decoding gives back the exact text.
//!
//! Signatures are 128 bits of HMAC-SHA256 (RFC 4868 truncates HMAC-SHA256 to 128 bits too):
//! - trackers: the HMAC of the raw payload; the impression URL carries its first 16 bytes, the
//!   click URL its last 16. One half says nothing of the other, so an impression URL cannot be
//!   made into a click URL, and the pair costs one HMAC;
//! - notices: for each kind, the first 16 bytes of the HMAC of the raw payload followed by the
//!   kind's tag byte.
//!
//! The group byte keeps the two schemes apart: no tracker payload is a notice payload plus a tag.
//!
//! # Why a prefix
//!
//! Everything that is the same for every decision of one line item, creative and placement
//! comes first. A multiple of 3 bytes, it has a base64 of its own that the payload's base64
//! starts with, and the HMAC state after it can be kept: each serving thread keeps both for
//! the prefixes it saw last (a direct-mapped cache, checked byte for byte), so signing a
//! decision hashes and encodes only its ~60-byte suffix.

use super::{HmacSha256, TrackError, TrackKind, TrackedAd, TrackedFields, UrlSigner};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use std::cell::RefCell;
use std::hash::BuildHasher;

pub(super) const VERSION: u8 = 5;
pub(super) const GROUP_TRACKERS: u8 = b'd';
pub(super) const GROUP_NOTICES: u8 = b'n';
/// Signature bytes kept (of 32).
pub(super) const SIG_BYTES: usize = 16;
/// Prefixes each serving thread remembers.
const CACHE_SLOTS: usize = 512;

/// A signature in base64url: 22 characters, inline.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Sig {
    buf: [u8; 24],
    len: u8,
}

impl Sig {
    fn of(tag: &[u8]) -> Sig {
        let mut sig = Sig::default();
        // 16 bytes are 22 base64 characters: they fit.
        sig.len = URL_SAFE_NO_PAD.encode_slice(tag, &mut sig.buf).unwrap_or(0) as u8;
        sig
    }

    pub fn as_str(&self) -> &str {
        // base64url is ASCII.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::ops::Deref for Sig {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Sig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Sig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Cached {
    signer: u64,
    prefix: Vec<u8>,
    /// The key's HMAC state after the prefix.
    mac: HmacSha256,
    b64: String,
}

thread_local! {
    static PREFIXES: RefCell<Vec<Option<Cached>>> = RefCell::new((0..CACHE_SLOTS).map(|_| None).collect());
    /// The prefix or suffix being encoded (reused).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// The value of each lowercase hex digit; 0xff for every other byte.
const HEX: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// 32 lowercase hex digits as 16 bytes.
fn hex16(s: &[u8]) -> Option<[u8; 16]> {
    let s: &[u8; 32] = s.try_into().ok()?;
    let mut out = [0; 16];
    let mut bad = 0;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (HEX[usize::from(pair[0])], HEX[usize::from(pair[1])]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad & 0xf0 == 0).then_some(out)
}

fn put_id(out: &mut Vec<u8>, id: &str) {
    let b = id.as_bytes();
    if let Some(raw) = hex16(b) {
        out.push(1);
        out.extend_from_slice(&raw);
    } else if let Some(raw) = b.split_first().filter(|(c, _)| c.is_ascii_alphabetic()).and_then(|(_, r)| hex16(r)) {
        out.push(2);
        out.push(b[0]);
        out.extend_from_slice(&raw);
    } else {
        out.push(0);
        put_bytes(out, b);
    }
}

fn prefix(out: &mut Vec<u8>, group: u8, key_id: &str, ad: &TrackedFields<'_>) {
    out.push(VERSION);
    out.push(group);
    // Key ids are 1–16 characters (checked by `UrlSigner::new`).
    out.push(key_id.len() as u8);
    out.extend_from_slice(key_id.as_bytes());
    for v in ad.entity_ids().into_iter().chain([ad.deal_id, ad.currency, ad.landing_url]) {
        put_bytes(out, v.as_bytes());
    }
    let pad = (3 - (out.len() + 1) % 3) % 3;
    out.push(pad as u8);
    out.extend_from_slice(&[0, 0][..pad]);
}

fn suffix(out: &mut Vec<u8>, ad: &TrackedFields<'_>, costs: &[i64]) {
    put_varint(out, zigzag(ad.expires_at));
    put_id(out, ad.request_id);
    put_id(out, ad.decision_id);
    put_varint(out, u64::from(ad.slot));
    out.extend_from_slice(&ad.user_key.to_le_bytes());
    put_varint(out, zigzag(ad.price_micros));
    for cost in costs {
        put_varint(out, zigzag(*cost));
    }
    put_varint(out, zigzag(ad.pending_minute));
}

impl UrlSigner {
    /// Appends the v5 payload of a `group` to `out` and returns the active key's HMAC state
    /// after it (`None`: no active key, which `new` rules out).
    pub(super) fn append_v5(
        &self,
        group: u8,
        ad: &TrackedFields<'_>,
        costs: &[i64],
        out: &mut String,
    ) -> Option<HmacSha256> {
        SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            prefix(buf, group, &self.active, ad);
            let slot = (rustc_hash::FxBuildHasher.hash_one(&buf[..]) as usize) % CACHE_SLOTS;
            PREFIXES.with_borrow_mut(|cache| {
                let hit = matches!(&cache[slot], Some(c) if c.signer == self.id && c.prefix == *buf);
                if !hit {
                    let mut mac = self.keys.get(&self.active)?.clone();
                    mac.update(buf);
                    let b64 = URL_SAFE_NO_PAD.encode(&buf[..]);
                    cache[slot] = Some(Cached { signer: self.id, prefix: buf.clone(), mac, b64 });
                }
                let cached = cache[slot].as_ref()?;
                out.reserve(cached.b64.len() + 96);
                out.push_str(&cached.b64);
                let mut mac = cached.mac.clone();
                buf.clear();
                suffix(buf, ad, costs);
                mac.update(buf);
                URL_SAFE_NO_PAD.encode_string(&buf[..], out);
                Some(mac)
            })
        })
    }

    /// The impression and click signatures of a tracker payload: the HMAC's two halves.
    pub(super) fn tracker_sigs_v5(mac: HmacSha256) -> [Sig; 2] {
        let tag = mac.finalize().into_bytes();
        [Sig::of(&tag[..SIG_BYTES]), Sig::of(&tag[SIG_BYTES..])]
    }

    /// The signature of one notice `kind` from the HMAC state after the payload.
    pub(super) fn sig_v5(mac: &HmacSha256, kind: TrackKind) -> Sig {
        let mut m = mac.clone();
        m.update(kind.tag().as_bytes());
        Sig::of(&m.finalize().into_bytes()[..SIG_BYTES])
    }

    /// Verifies a decoded v5 payload (`raw`) for `kind` against `s`.
    pub(super) fn verify_v5(
        &self,
        kind: TrackKind,
        raw: &[u8],
        s: &str,
        now_secs: i64,
    ) -> Result<TrackedAd, TrackError> {
        let p = parse(raw).ok_or(TrackError::Malformed)?;
        let fits = match p.group {
            GROUP_TRACKERS => matches!(kind, TrackKind::Impression | TrackKind::Click),
            _ => matches!(kind, TrackKind::Win | TrackKind::Billing | TrackKind::Loss),
        };
        let mut mac = self.keys.get(p.key_id).ok_or(TrackError::UnknownKey)?.clone();
        if !fits {
            return Err(TrackError::WrongKind);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| TrackError::BadSignature)?;
        if sig.len() != SIG_BYTES {
            return Err(TrackError::BadSignature);
        }
        mac.update(raw);
        let checked = match kind {
            TrackKind::Impression => mac.verify_truncated_left(&sig),
            TrackKind::Click => mac.verify_truncated_right(&sig),
            _ => {
                mac.update(kind.tag().as_bytes());
                mac.verify_truncated_left(&sig)
            }
        };
        checked.map_err(|_| TrackError::WrongKindOrSignature)?;
        let cost = if kind == TrackKind::Click { p.costs[1] } else { p.costs[0] };
        let ad = TrackedAd {
            kind,
            key_id: p.key_id.to_string(),
            expires_at: p.expires_at,
            request_id: p.request_id,
            decision_id: p.decision_id,
            slot: p.slot,
            advertiser_id: p.ids[0].to_string(),
            campaign_id: p.ids[1].to_string(),
            line_item_id: p.ids[2].to_string(),
            creative_id: p.ids[3].to_string(),
            publisher_id: p.ids[4].to_string(),
            site_id: p.ids[5].to_string(),
            placement_id: p.ids[6].to_string(),
            user_key: p.user_key,
            price_micros: p.price_micros,
            cost_micros: cost,
            pending_minute: p.pending_minute,
            deal_id: p.ids[7].to_string(),
            currency: p.ids[8].to_string(),
            landing_url: p.ids[9].to_string(),
        };
        if now_secs > ad.expires_at {
            return Err(TrackError::Expired);
        }
        Ok(ad)
    }
}

struct Parsed<'a> {
    group: u8,
    key_id: &'a str,
    /// advertiser, campaign, line item, creative, publisher, site, placement, deal, currency,
    /// landing URL.
    ids: [&'a str; 10],
    expires_at: i64,
    request_id: String,
    decision_id: String,
    slot: u32,
    user_key: u64,
    price_micros: i64,
    /// Trackers: impression, click; notices: the one cost (twice).
    costs: [i64; 2],
    pending_minute: i64,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn signed(&mut self) -> Option<i64> {
        self.varint().map(unzigzag)
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.varint()?).ok()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    fn id(&mut self) -> Option<String> {
        let hex = |raw: &[u8], out: &mut String| {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            for b in raw {
                out.push(char::from(DIGITS[usize::from(b >> 4)]));
                out.push(char::from(DIGITS[usize::from(b & 15)]));
            }
        };
        match self.byte()? {
            0 => self.str().map(str::to_string),
            1 => {
                let mut s = String::with_capacity(32);
                hex(self.take(16)?, &mut s);
                Some(s)
            }
            2 => {
                let c = self.byte().filter(u8::is_ascii_alphabetic)?;
                let mut s = String::with_capacity(33);
                s.push(char::from(c));
                hex(self.take(16)?, &mut s);
                Some(s)
            }
            _ => None,
        }
    }
}

fn parse(raw: &[u8]) -> Option<Parsed<'_>> {
    let mut r = Reader(raw);
    if r.byte()? != VERSION {
        return None;
    }
    let group = r.byte().filter(|g| matches!(*g, GROUP_TRACKERS | GROUP_NOTICES))?;
    let key_len = usize::from(r.byte()?);
    let key_id = std::str::from_utf8(r.take(key_len)?).ok()?;
    let mut ids = [""; 10];
    for id in &mut ids {
        *id = r.str()?;
    }
    let pad = usize::from(r.byte()?);
    if pad > 2 || r.take(pad)?.iter().any(|b| *b != 0) || !(raw.len() - r.0.len()).is_multiple_of(3) {
        return None;
    }
    let expires_at = r.signed()?;
    let request_id = r.id()?;
    let decision_id = r.id()?;
    let slot = u32::try_from(r.varint()?).ok()?;
    let user_key = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let price_micros = r.signed()?;
    let first = r.signed()?;
    let costs = if group == GROUP_TRACKERS { [first, r.signed()?] } else { [first, first] };
    let pending_minute = r.signed()?;
    if !r.0.is_empty() {
        return None;
    }
    Some(Parsed {
        group,
        key_id,
        ids,
        expires_at,
        request_id,
        decision_id,
        slot,
        user_key,
        price_micros,
        costs,
        pending_minute,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_ids_give_back_the_exact_text() {
        for id in [
            "01a220bfdbd87000a04ed13adb7c26c0",
            "d01a220bfdbd87000a04ed13adb7c26c0",
            "t01a220bfdbd87000a04ed13adb7c26c0",
            "01A220BFDBD87000A04ED13ADB7C26C0",
            "01a220bf-dbd8-7000-a04e-d13adb7c26c0",
            "",
            "r-1",
            "é",
            "701a220bfdbd87000a04ed13adb7c26c0",
        ] {
            let mut buf = Vec::new();
            put_id(&mut buf, id);
            let mut r = Reader(&buf);
            assert_eq!(r.id().as_deref(), Some(id));
            assert!(r.0.is_empty());
        }
        let mut buf = Vec::new();
        put_id(&mut buf, "d01a220bfdbd87000a04ed13adb7c26c0");
        assert_eq!(buf.len(), 18, "a decision id takes 18 bytes");
    }

    #[test]
    fn varints_and_zigzag_round_trip_at_the_edges() {
        for v in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1_795_846_674] {
            let mut buf = Vec::new();
            put_varint(&mut buf, zigzag(v));
            assert_eq!(Reader(&buf).signed(), Some(v));
        }
        // Eleven continuation bytes are not a u64.
        assert_eq!(Reader(&[0xff; 11]).varint(), None);
    }

    #[test]
    fn every_prefix_is_a_multiple_of_three_bytes() {
        let mut landing = String::new();
        for _ in 0..6 {
            let ad = TrackedFields {
                expires_at: 0,
                request_id: "",
                decision_id: "",
                slot: 0,
                advertiser_id: "a",
                campaign_id: "c",
                line_item_id: "li",
                creative_id: "cr",
                publisher_id: "p",
                site_id: "s",
                placement_id: "pl",
                user_key: 0,
                price_micros: 0,
                cost_micros: 0,
                pending_minute: 0,
                deal_id: "",
                currency: "",
                landing_url: &landing,
            };
            let mut buf = Vec::new();
            prefix(&mut buf, GROUP_TRACKERS, "k1", &ad);
            assert!(buf.len().is_multiple_of(3), "{buf:?}");
            landing.push('x');
        }
    }
}
