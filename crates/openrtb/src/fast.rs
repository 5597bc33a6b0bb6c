//! The bidder's fast parse: the body into a simd-json tape first (one tight pass), then the
//! fields the bidder reads are picked out of it by hand.
//!
//! Building the typed request through serde's visitors is most of what
//! [`crate::parse_request_for_bidding`] costs. Picking the read fields out of an untyped tree
//! skips that machinery. The walk reads any tree through the [`Node`] trait: simd-json's tape is
//! what the server parses into (a flat array whose objects know their length, walked 2–3 times
//! faster than sonic-rs' DOM of the same body, at a slightly dearer build: banner 9.2 µs against
//! 11.1 µs in criterion); sonic-rs' DOM, where the walk began, stays readable for the parse bench
//! and the tests, which hold the two walks equal.
//!
//! The walk takes only the plain shapes: a string where a string is expected, an integer that
//! fits where an integer is expected, `null` for an absent value, a list as a JSON array. On
//! anything else — a tolerated type slip (`"w": "300"`), a number for an id, a lone value for a
//! list, a repeated key, `dooh` or `audio` objects, an `ext` nested too deep — it gives up, and
//! [`crate::parse_request_for_bidding_fast`] parses the body the usual way. So whatever the walk
//! returns is what `parse_request_for_bidding` returns (a proptest holds them equal on mutated
//! samples), and every error and its path still come from the usual parse.

use crate::enums::*;
use crate::request::*;
use sonic_rs::{JsonContainerTrait, JsonValueTrait};
use std::borrow::Cow;

/// The request the bidder reads, from a parsed tree; `None` when the tree has a shape the walk
/// leaves to the usual parse (see the module docs).
pub fn bid_request<'a, N: Node<'a>>(v: N) -> Option<BidRequest<'a>> {
    let mut r = BidRequest::default();
    object(v, |k, v| {
        match k {
            "id" => r.id = cow(v)?,
            "imp" => r.imp = imps(v)?,
            "site" => r.site = opt(v, site)?,
            "app" => r.app = opt(v, app)?,
            "dooh" => none(v)?,
            "device" => r.device = opt(v, device)?,
            "user" => r.user = opt(v, user)?,
            "test" => r.test = int(v)?,
            "at" => r.at = int(v)?.map(AuctionType),
            "tmax" => r.tmax = long(v)?,
            "wseat" => r.wseat = list(v, string)?,
            "bseat" => r.bseat = list(v, string)?,
            "cur" => r.cur = list(v, string)?,
            "bcat" => r.bcat = list(v, string)?,
            "badv" => r.badv = list(v, string)?,
            "regs" => r.regs = opt(v, regs)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

/// The impressions, each built in its place in the list (an `Imp` is large to move).
fn imps<'a, N: Node<'a>>(v: N) -> Option<Vec<Imp<'a>>> {
    if v.is_null() {
        return Some(Vec::new());
    }
    let mut out = Vec::with_capacity(v.items_len()?);
    v.each_item(|item| {
        out.push(Imp::default());
        imp(item, out.last_mut()?)
    })?;
    Some(out)
}

fn imp<'a, N: Node<'a>>(v: N, r: &mut Imp<'a>) -> Option<()> {
    object(v, |k, v| {
        match k {
            "id" => r.id = cow(v)?,
            "banner" => r.banner = opt(v, banner)?,
            "video" => r.video = opt(v, video)?,
            "audio" => none(v)?,
            "native" => r.native = opt(v, native)?,
            "pmp" => r.pmp = opt(v, pmp)?,
            "instl" => r.instl = int(v)?,
            "tagid" => r.tagid = opt_str(v)?,
            "bidfloor" => r.bidfloor = float(v)?,
            "bidfloorcur" => r.bidfloorcur = opt_str(v)?,
            "rwdd" => r.rwdd = int(v)?,
            _ => {}
        }
        Some(())
    })
}

fn banner<'a, N: Node<'a>>(v: N) -> Option<Banner<'a>> {
    let mut r = Banner::default();
    object(v, |k, v| {
        match k {
            "format" => r.format = list(v, format)?,
            "w" => r.w = int(v)?,
            "h" => r.h = int(v)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

fn format<'a, N: Node<'a>>(v: N) -> Option<Format> {
    let mut r = Format::default();
    object(v, |k, v| {
        match k {
            "w" => r.w = int(v)?,
            "h" => r.h = int(v)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

fn video<'a, N: Node<'a>>(v: N) -> Option<Box<Video<'a>>> {
    let mut r = Box::<Video>::default();
    object(v, |k, v| {
        match k {
            "mimes" => r.mimes = list(v, string)?,
            "minduration" => r.minduration = int(v)?,
            "maxduration" => r.maxduration = int(v)?,
            "protocols" => r.protocols = list(v, |v: N| Some(Protocol(v.i64().and_then(fits)?)))?,
            "protocol" => r.protocol = int(v)?.map(Protocol),
            "w" => r.w = int(v)?,
            "h" => r.h = int(v)?,
            "placement" => r.placement = int(v)?.map(VideoPlacement),
            "plcmt" => r.plcmt = int(v)?.map(Plcmt),
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

fn native<'a, N: Node<'a>>(v: N) -> Option<Native<'a>> {
    let mut r = Native::default();
    object(v, |k, v| {
        match k {
            // A JSON object here (tolerated) is kept as its text by the usual parse.
            "request" => r.request = cow(v)?,
            "ver" => r.ver = opt_str(v)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

fn pmp<'a, N: Node<'a>>(v: N) -> Option<Pmp<'a>> {
    let mut r = Pmp::default();
    object(v, |k, v| {
        match k {
            "private_auction" => r.private_auction = int(v)?,
            "deals" => r.deals = list(v, deal)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

fn deal<'a, N: Node<'a>>(v: N) -> Option<Deal<'a>> {
    let mut r = Deal::default();
    object(v, |k, v| {
        match k {
            "id" => r.id = cow(v)?,
            "bidfloor" => r.bidfloor = float(v)?,
            "bidfloorcur" => r.bidfloorcur = opt_str(v)?,
            "at" => r.at = int(v)?.map(AuctionType),
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

fn site<'a, N: Node<'a>>(v: N) -> Option<Box<Site<'a>>> {
    let mut r = Box::<Site>::default();
    object(v, |k, v| {
        match k {
            "id" => r.id = opt_str(v)?,
            "domain" => r.domain = opt_str(v)?,
            "page" => r.page = opt_str(v)?,
            "publisher" => r.publisher = opt(v, publisher)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

fn app<'a, N: Node<'a>>(v: N) -> Option<Box<App<'a>>> {
    let mut r = Box::<App>::default();
    object(v, |k, v| {
        match k {
            "id" => r.id = opt_str(v)?,
            "bundle" => r.bundle = opt_str(v)?,
            "publisher" => r.publisher = opt(v, publisher)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

fn publisher<'a, N: Node<'a>>(v: N) -> Option<Publisher<'a>> {
    Some(Publisher { id: only(v, "id", opt_str)?.flatten(), ..Default::default() })
}

fn device<'a, N: Node<'a>>(v: N) -> Option<Box<Device<'a>>> {
    let mut r = Box::<Device>::default();
    object(v, |k, v| {
        match k {
            "geo" => r.geo = opt(v, geo)?,
            "ua" => r.ua = opt_str(v)?,
            "ip" => r.ip = opt_str(v)?,
            "ipv6" => r.ipv6 = opt_str(v)?,
            "devicetype" => r.devicetype = int(v)?.map(DeviceType),
            "os" => r.os = opt_str(v)?,
            "language" => r.language = opt_str(v)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

fn geo<'a, N: Node<'a>>(v: N) -> Option<Geo<'a>> {
    let mut r = Geo::default();
    object(v, |k, v| {
        match k {
            "country" => r.country = opt_str(v)?,
            "region" => r.region = opt_str(v)?,
            "metro" => r.metro = opt_str(v)?,
            "city" => r.city = opt_str(v)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

fn user<'a, N: Node<'a>>(v: N) -> Option<Box<User<'a>>> {
    let mut r = Box::<User>::default();
    object(v, |k, v| {
        match k {
            "id" => r.id = opt_str(v)?,
            "buyeruid" => r.buyeruid = opt_str(v)?,
            "geo" => r.geo = opt(v, geo)?,
            "data" => r.data = list(v, data)?,
            "consent" => r.consent = opt_str(v)?,
            "eids" => r.eids = list(v, eid)?,
            "ext" => r.ext = ext(v)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

fn data<'a, N: Node<'a>>(v: N) -> Option<Data<'a>> {
    Some(Data { segment: only(v, "segment", |v| list(v, segment))?.unwrap_or_default(), ..Default::default() })
}

fn segment<'a, N: Node<'a>>(v: N) -> Option<Segment<'a>> {
    Some(Segment { id: only(v, "id", opt_str)?.flatten(), ..Default::default() })
}

fn eid<'a, N: Node<'a>>(v: N) -> Option<Eid<'a>> {
    Some(Eid { source: only(v, "source", opt_str)?.flatten(), ..Default::default() })
}

fn regs<'a, N: Node<'a>>(v: N) -> Option<Regs<'a>> {
    let mut r = Regs::default();
    object(v, |k, v| {
        match k {
            "coppa" => r.coppa = int(v)?,
            "gdpr" => r.gdpr = int(v)?,
            "us_privacy" => r.us_privacy = opt_str(v)?,
            "gpp" => r.gpp = opt_str(v)?,
            "gpp_sid" => r.gpp_sid = list(v, |v: N| v.i64().and_then(fits))?,
            "ext" => r.ext = ext(v)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

/// An object of which the walk reads one field, `key`: that field's value through `f` (`None`
/// when the object lacks it).
fn only<'a, N: Node<'a>, T>(v: N, key: &str, f: impl FnOnce(N) -> Option<T>) -> Option<Option<T>> {
    let mut r = None;
    let mut f = Some(f);
    object(v, |k, v| {
        if k == key {
            // A second `key` ends the walk as repeated before it gets here.
            r = Some(f.take()?(v)?);
        }
        Some(())
    })?;
    Some(r)
}

/// Walks an object's entries through `f`, which reads the fields it knows into the value being
/// built: `None` (from `f`, for a shape the walk leaves to the usual parse, or for a repeated key)
/// gives up.
///
/// The usual parse refuses a repeated field and ignores a repeated unknown key: either way it
/// decides, not the walk, so a repeated key gives up. Each key's 6-bit hash marks a bit; only a
/// key whose bit is already set is compared with the keys before it.
#[inline]
fn object<'a, N: Node<'a>>(obj: N, mut f: impl FnMut(&'a str, N) -> Option<()>) -> Option<()> {
    let mut seen = 0u64;
    let mut at = 0usize;
    obj.each_field(|k, v| {
        let b = k.as_bytes();
        let h = (b.len() as u32)
            .wrapping_mul(31)
            .wrapping_add(u32::from(b.first().copied().unwrap_or(0)))
            .wrapping_mul(31)
            .wrapping_add(u32::from(b.last().copied().unwrap_or(0)))
            % 64;
        let bit = 1u64 << h;
        if seen & bit != 0 && repeated(obj, at, k) {
            return None;
        }
        seen |= bit;
        at += 1;
        f(k, v)
    })
}

/// Whether `key` is among the first `before` keys of the object `obj`.
#[cold]
fn repeated<'a, N: Node<'a>>(obj: N, before: usize, key: &str) -> bool {
    let mut at = 0;
    let mut found = false;
    obj.each_field(|k, _| {
        if at == before {
            return None;
        }
        at += 1;
        found |= k == key;
        Some(())
    });
    found
}

/// `null` → `None`, an object → `Some(f(object))`, anything else gives up.
fn opt<'a, N: Node<'a>, T>(v: N, f: impl FnOnce(N) -> Option<T>) -> Option<Option<T>> {
    if v.is_null() {
        Some(None)
    } else {
        f(v).map(Some)
    }
}

/// An object the walk leaves to the usual parse: only `null` (absent) passes.
fn none<'a, N: Node<'a>>(v: N) -> Option<()> {
    v.is_null().then_some(())
}

/// `null` → empty, an array → its items through `f`; a lone value gives up.
fn list<'a, N: Node<'a>, T>(v: N, f: impl FnMut(N) -> Option<T>) -> Option<Vec<T>> {
    if v.is_null() {
        return Some(Vec::new());
    }
    let mut out = Vec::with_capacity(v.items_len()?);
    let mut f = f;
    v.each_item(|item| {
        out.push(f(item)?);
        Some(())
    })?;
    Some(out)
}

/// A required string; `null` is the empty string (as `de::cow`).
fn cow<'a, N: Node<'a>>(v: N) -> Option<Str<'a>> {
    if v.is_null() {
        Some(Cow::Borrowed(""))
    } else {
        string(v)
    }
}

fn string<'a, N: Node<'a>>(v: N) -> Option<Str<'a>> {
    v.str().map(Cow::Borrowed)
}

/// An optional string (`de::opt_str`, and `de::opt_cow` without its numbers).
fn opt_str<'a, N: Node<'a>>(v: N) -> Option<Option<Str<'a>>> {
    if v.is_null() {
        Some(None)
    } else {
        string(v).map(Some)
    }
}

fn fits(n: i64) -> Option<i32> {
    i32::try_from(n).ok()
}

/// An optional integer that fits in 32 bits.
fn int<'a, N: Node<'a>>(v: N) -> Option<Option<i32>> {
    if v.is_null() {
        Some(None)
    } else {
        v.i64().and_then(fits).map(Some)
    }
}

fn long<'a, N: Node<'a>>(v: N) -> Option<Option<i64>> {
    if v.is_null() {
        Some(None)
    } else {
        v.i64().map(Some)
    }
}

/// An optional number (an integer is read as a float, as `de::opt_f64` does).
fn float<'a, N: Node<'a>>(v: N) -> Option<Option<f64>> {
    if v.is_null() {
        Some(None)
    } else {
        v.f64().map(Some)
    }
}

/// An `ext`: any shape, depth-limited, `null` is `None` (as `de::ext`); too deep gives up.
fn ext<'a, N: Node<'a>>(v: N) -> Option<Option<serde_json::Value>> {
    if v.is_null() {
        Some(None)
    } else {
        v.json(crate::de::MAX_EXT_DEPTH).map(Some)
    }
}

/// A parsed JSON value as the walk reads it. Implemented for simd-json's tape (what
/// [`crate::parse_request_for_bidding_fast`] uses) and for sonic-rs' DOM (the walk's first
/// home, kept for the tests and the parse bench's comparison).
pub trait Node<'a>: Copy {
    fn is_null(self) -> bool;
    fn str(self) -> Option<&'a str>;
    /// An integer that fits in an `i64`.
    fn i64(self) -> Option<i64>;
    /// Any number, as a float.
    fn f64(self) -> Option<f64>;
    /// An array's length; `None` for anything else.
    fn items_len(self) -> Option<usize>;
    /// An array's items through `f`, until it returns `None`; `None` for anything else.
    fn each_item(self, f: impl FnMut(Self) -> Option<()>) -> Option<()>;
    /// An object's entries in document order (repeated keys included) through `f`, until it
    /// returns `None`; `None` for anything else.
    fn each_field(self, f: impl FnMut(&'a str, Self) -> Option<()>) -> Option<()>;
    /// The value as `de::ext` builds it: `None` when it nests deeper than `depth` levels.
    fn json(self, depth: usize) -> Option<serde_json::Value>;
}

impl<'t, 'a: 't> Node<'a> for simd_json::tape::Value<'t, 'a> {
    #[inline]
    fn is_null(self) -> bool {
        simd_json::prelude::ValueAsScalar::as_null(&self).is_some()
    }
    #[inline]
    fn str(self) -> Option<&'a str> {
        simd_json::prelude::ValueIntoString::into_string(self)
    }
    #[inline]
    fn i64(self) -> Option<i64> {
        simd_json::prelude::ValueAsScalar::as_i64(&self).filter(|_| !minus_zero(self))
    }
    #[inline]
    fn f64(self) -> Option<f64> {
        use simd_json::prelude::ValueAsScalar;
        if minus_zero(self) {
            return None;
        }
        // `-0.0` reads as plain zero, as sonic-rs has it.
        let plain = |f: f64| if f == 0.0 { 0.0 } else { f };
        self.as_f64().map(plain).or_else(|| self.as_i64().map(|n| n as f64)).or_else(|| self.as_u64().map(|n| n as f64))
    }
    #[inline]
    fn items_len(self) -> Option<usize> {
        self.as_array().map(|a| a.len())
    }
    #[inline]
    fn each_item(self, mut f: impl FnMut(Self) -> Option<()>) -> Option<()> {
        for v in self.as_array()?.iter() {
            f(v)?;
        }
        Some(())
    }
    #[inline]
    fn each_field(self, mut f: impl FnMut(&'a str, Self) -> Option<()>) -> Option<()> {
        for (k, v) in self.as_object()?.iter() {
            f(k, v)?;
        }
        Some(())
    }
    fn json(self, depth: usize) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        use simd_json::prelude::{ValueAsScalar, ValueIntoString};
        if let Some(o) = self.as_object() {
            let depth = depth.checked_sub(1)?;
            let mut out = serde_json::Map::new();
            for (k, v) in o.iter() {
                out.insert(k.to_owned(), v.json(depth)?);
            }
            return Some(J::Object(out));
        }
        if let Some(a) = self.as_array() {
            let depth = depth.checked_sub(1)?;
            return a.iter().map(|v| v.json(depth)).collect::<Option<Vec<_>>>().map(J::Array);
        }
        if minus_zero(self) {
            return None;
        }
        Some(if let Some(s) = self.into_string() {
            J::String(s.to_owned())
        } else if let Some(b) = self.as_bool() {
            J::Bool(b)
        } else if let Some(n) = self.as_i64() {
            J::Number(n.into())
        } else if let Some(n) = self.as_u64() {
            J::Number(n.into())
        } else if let Some(f) = self.as_f64() {
            // `-0` is plain zero, as `de::ext` has it.
            let f = if f == 0.0 { 0.0 } else { f };
            serde_json::Number::from_f64(f).map_or(J::Null, J::Number)
        } else {
            J::Null
        })
    }
}

/// Whether a tape value is `-0` (simd-json's only `I64` zero: it reads other non-negative
/// integers as `U64`). sonic-rs reads `-0` as a float, so the walk leaves it to the usual parse.
#[inline]
fn minus_zero(v: simd_json::tape::Value<'_, '_>) -> bool {
    use simd_json::prelude::{TypedValue, ValueAsScalar};
    v.value_type() == simd_json::ValueType::I64 && v.as_i64() == Some(0)
}

impl<'a> Node<'a> for &'a sonic_rs::Value {
    #[inline]
    fn is_null(self) -> bool {
        JsonValueTrait::is_null(self)
    }
    #[inline]
    fn str(self) -> Option<&'a str> {
        self.as_str()
    }
    #[inline]
    fn i64(self) -> Option<i64> {
        self.as_i64()
    }
    #[inline]
    fn f64(self) -> Option<f64> {
        if self.is_number() {
            self.as_f64()
        } else {
            None
        }
    }
    #[inline]
    fn items_len(self) -> Option<usize> {
        self.as_array().map(|a| a.len())
    }
    #[inline]
    fn each_item(self, mut f: impl FnMut(Self) -> Option<()>) -> Option<()> {
        for v in self.as_array()?.iter() {
            f(v)?;
        }
        Some(())
    }
    #[inline]
    fn each_field(self, mut f: impl FnMut(&'a str, Self) -> Option<()>) -> Option<()> {
        for (k, v) in self.as_object()?.iter() {
            f(k, v)?;
        }
        Some(())
    }
    fn json(self, _depth: usize) -> Option<serde_json::Value> {
        #[derive(serde::Deserialize)]
        struct Ext(#[serde(deserialize_with = "crate::de::ext")] Option<serde_json::Value>);
        sonic_rs::from_value::<Ext>(self).ok().and_then(|Ext(e)| e)
    }
}
