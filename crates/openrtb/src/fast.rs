//! The bidder's fast parse: the body into a sonic-rs DOM first (one tight pass), then the
//! fields the bidder reads are picked out of it by hand.
//!
//! Building the typed request through serde's visitors is most of what
//! [`crate::parse_request_for_bidding`] costs: on the banner sample (criterion, this crate's
//! `parse` bench) the DOM takes about a third of the typed parse, and the typed parse from an
//! already built DOM nearly all of it. Picking the read fields out of the DOM skips that
//! machinery.
//!
//! The walk takes only the plain shapes: a string where a string is expected, an integer that
//! fits where an integer is expected, `null` for an absent value, a list as a JSON array. On
//! anything else — a tolerated type slip (`"w": "300"`), a number for an id, a lone value for a
//! list, a repeated key, `dooh` or `audio` objects — it gives up, and
//! [`crate::parse_request_for_bidding_fast`] parses the body the usual way. So whatever the walk
//! returns is what `parse_request_for_bidding` returns (a proptest holds them equal on mutated
//! samples), and every error and its path still come from the usual parse.

use crate::enums::*;
use crate::request::*;
use sonic_rs::{JsonContainerTrait, JsonValueTrait, Object, Value};
use std::borrow::Cow;

/// The request the bidder reads, from a parsed DOM; `None` when the DOM has a shape the walk
/// leaves to the usual parse (see the module docs).
pub fn bid_request(v: &Value) -> Option<BidRequest<'_>> {
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
fn imps(v: &Value) -> Option<Vec<Imp<'_>>> {
    if v.is_null() {
        return Some(Vec::new());
    }
    let items = v.as_array()?;
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        out.push(Imp::default());
        imp(item, out.last_mut()?)?;
    }
    Some(out)
}

fn imp<'a>(v: &'a Value, r: &mut Imp<'a>) -> Option<()> {
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

fn banner(v: &Value) -> Option<Banner<'_>> {
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

fn format(v: &Value) -> Option<Format> {
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

fn video(v: &Value) -> Option<Box<Video<'_>>> {
    let mut r = Box::<Video>::default();
    object(v, |k, v| {
        match k {
            "mimes" => r.mimes = list(v, string)?,
            "minduration" => r.minduration = int(v)?,
            "maxduration" => r.maxduration = int(v)?,
            "protocols" => r.protocols = list(v, |v| Some(Protocol(v.as_i64().and_then(fits)?)))?,
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

fn native(v: &Value) -> Option<Native<'_>> {
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

fn pmp(v: &Value) -> Option<Pmp<'_>> {
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

fn deal(v: &Value) -> Option<Deal<'_>> {
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

fn site(v: &Value) -> Option<Box<Site<'_>>> {
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

fn app(v: &Value) -> Option<Box<App<'_>>> {
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

fn publisher(v: &Value) -> Option<Publisher<'_>> {
    Some(Publisher { id: only(v, "id", opt_str)?.flatten(), ..Default::default() })
}

fn device(v: &Value) -> Option<Box<Device<'_>>> {
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

fn geo(v: &Value) -> Option<Geo<'_>> {
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

fn user(v: &Value) -> Option<Box<User<'_>>> {
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

fn data(v: &Value) -> Option<Data<'_>> {
    Some(Data { segment: only(v, "segment", |v| list(v, segment))?.unwrap_or_default(), ..Default::default() })
}

fn segment(v: &Value) -> Option<Segment<'_>> {
    Some(Segment { id: only(v, "id", opt_str)?.flatten(), ..Default::default() })
}

fn eid(v: &Value) -> Option<Eid<'_>> {
    Some(Eid { source: only(v, "source", opt_str)?.flatten(), ..Default::default() })
}

/// An object of which the walk reads one field, `key`: that field's value through `f` (`None`
/// when the object lacks it).
fn only<'a, T>(v: &'a Value, key: &str, f: impl FnOnce(&'a Value) -> Option<T>) -> Option<Option<T>> {
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
#[inline]
fn object<'a>(v: &'a Value, mut f: impl FnMut(&'a str, &'a Value) -> Option<()>) -> Option<()> {
    let mut fields = Fields::of(v)?;
    for (k, v) in &mut fields {
        f(k, v)?;
    }
    fields.clean()
}

fn regs(v: &Value) -> Option<Regs<'_>> {
    let mut r = Regs::default();
    object(v, |k, v| {
        match k {
            "coppa" => r.coppa = int(v)?,
            "gdpr" => r.gdpr = int(v)?,
            "us_privacy" => r.us_privacy = opt_str(v)?,
            "gpp" => r.gpp = opt_str(v)?,
            "gpp_sid" => r.gpp_sid = list(v, |v| v.as_i64().and_then(fits))?,
            "ext" => r.ext = ext(v)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

/// An object's entries, checked for a repeated key on the way (the usual parse refuses a
/// repeated field and ignores a repeated unknown key: either way it decides, not the walk).
/// Each key's 6-bit hash marks a bit; only a key whose bit is already set is compared with the
/// keys before it. After the loop, [`Fields::clean`] tells whether the entries were all seen
/// and none repeated.
struct Fields<'a> {
    object: &'a Object,
    entries: sonic_rs::value::object::Iter<'a>,
    seen: u64,
    at: usize,
    repeated: bool,
}

impl<'a> Fields<'a> {
    fn of(v: &'a Value) -> Option<Fields<'a>> {
        let object = v.as_object()?;
        Some(Fields { object, entries: object.iter(), seen: 0, at: 0, repeated: false })
    }

    fn clean(&self) -> Option<()> {
        (!self.repeated).then_some(())
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a str, &'a Value);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (k, v) = self.entries.next()?;
        let b = k.as_bytes();
        let h = (b.len() as u32)
            .wrapping_mul(31)
            .wrapping_add(u32::from(b.first().copied().unwrap_or(0)))
            .wrapping_mul(31)
            .wrapping_add(u32::from(b.last().copied().unwrap_or(0)))
            % 64;
        let bit = 1u64 << h;
        if self.seen & bit != 0 && self.object.iter().take(self.at).any(|(prev, _)| prev == k) {
            self.repeated = true;
            return None;
        }
        self.seen |= bit;
        self.at += 1;
        Some((k, v))
    }
}

/// `null` → `None`, an object → `Some(f(object))`, anything else gives up.
fn opt<'a, T>(v: &'a Value, f: impl FnOnce(&'a Value) -> Option<T>) -> Option<Option<T>> {
    if v.is_null() {
        Some(None)
    } else {
        f(v).map(Some)
    }
}

/// An object the walk leaves to the usual parse: only `null` (absent) passes.
fn none(v: &Value) -> Option<()> {
    v.is_null().then_some(())
}

/// `null` → empty, an array → its items through `f`; a lone value gives up.
fn list<'a, T>(v: &'a Value, f: impl FnMut(&'a Value) -> Option<T>) -> Option<Vec<T>> {
    if v.is_null() {
        return Some(Vec::new());
    }
    v.as_array()?.iter().map(f).collect()
}

/// A required string; `null` is the empty string (as `de::cow`).
fn cow(v: &Value) -> Option<Str<'_>> {
    if v.is_null() {
        Some(Cow::Borrowed(""))
    } else {
        string(v)
    }
}

fn string(v: &Value) -> Option<Str<'_>> {
    v.as_str().map(Cow::Borrowed)
}

/// An optional string (`de::opt_str`, and `de::opt_cow` without its numbers).
fn opt_str(v: &Value) -> Option<Option<Str<'_>>> {
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
fn int(v: &Value) -> Option<Option<i32>> {
    if v.is_null() {
        Some(None)
    } else {
        v.as_i64().and_then(fits).map(Some)
    }
}

fn long(v: &Value) -> Option<Option<i64>> {
    if v.is_null() {
        Some(None)
    } else {
        v.as_i64().map(Some)
    }
}

/// An optional number (an integer is read as a float, as `de::opt_f64` does).
fn float(v: &Value) -> Option<Option<f64>> {
    if v.is_null() {
        Some(None)
    } else if v.is_number() {
        v.as_f64().map(Some)
    } else {
        None
    }
}

/// An `ext`: through `de::ext` itself, from the DOM node (any shape, depth-limited, `null` is
/// `None`); an error gives up.
fn ext(v: &Value) -> Option<Option<serde_json::Value>> {
    #[derive(serde::Deserialize)]
    struct Ext(#[serde(deserialize_with = "crate::de::ext")] Option<serde_json::Value>);
    sonic_rs::from_value::<Ext>(v).ok().map(|Ext(e)| e)
}
